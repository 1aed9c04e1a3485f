"""`nas blocks`: the attention blocks with their default hyperparameters, params and GFLOPs at one size."""

from __future__ import annotations

import json
import re

import click

from nas.errors import NasError


def _parse_size(text: str) -> tuple[int, int]:
    """'40' or '40x24' (height x width) -> (h, w); NasError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise NasError(
            f"--imgsz {text!r}: give the feature-map size as H or HxW with positive integers, "
            f"e.g. 40 or 20x12"
        )
    h = int(m.group(1))
    return h, int(m.group(2)) if m.group(2) is not None else h


def block_rows(channels: int, h: int, w: int) -> list[dict]:
    """One row per block at its defaults (plus a YOLOv5 3x3 Conv of the same width first): params and
    GFLOPs of one forward on a (1, channels, h, w) feature map, counted on the meta device."""
    import torch
    from torch import nn

    import blocks

    try:
        from nas.cost import module_flops
    except ImportError:  # nas.cost is optional here: count with torch's FLOP counter directly
        from torch.utils.flop_counter import FlopCounterMode

        def module_flops(module: nn.Module, input_shape: tuple) -> float:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                module(torch.empty(*input_shape, device="meta"))
            return float(counter.get_total_flops())

    shape = (1, channels, h, w)
    with torch.device("meta"):
        conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels), nn.SiLU()
        )
    rows = [
        {
            "block": "Conv",
            "hyperparameters": {"k": 3, "s": 1},
            "params": sum(p.numel() for p in conv.parameters()),
            "gflops": module_flops(conv.eval(), shape) / 1e9,
            "changes_channels": True,
            "summary": "YOLOv5 Conv (3x3 conv, BN, SiLU) of the same width, for reference",
        }
    ]
    for name, spec in blocks.REGISTRY.items():
        try:
            hp = blocks.yaml_hyperparameters(name, channels, [])
            with torch.device("meta"):
                m = blocks.build(name, channels, **hp)
        except blocks.BlockError as e:
            raise NasError(f"--channels {channels}: {e}") from None
        rows.append(
            {
                "block": name,
                "hyperparameters": hp,
                "params": sum(p.numel() for p in m.parameters()),
                "gflops": module_flops(m.eval(), shape) / 1e9,
                "changes_channels": spec.changes_channels,
                "summary": spec.summary,
            }
        )
    return rows


@click.command("blocks")
@click.option(
    "--channels",
    default="256",
    show_default=True,
    help="Width of the feature map the blocks see (a multiple of 8, as YOLOv5 widths are).",
)
@click.option(
    "--imgsz",
    default="40x40",
    show_default=True,
    help="Feature-map size H or HxW (40x40 is P4 of a 640 image).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of a table.")
def command(channels: str, imgsz: str, as_json: bool) -> None:
    """The attention blocks at their default hyperparameters: params and GFLOPs on one feature map.

    GFLOPs are 2 x multiply-accumulates of every convolution and matrix product (attention included) at
    the given size, counted on the meta device; a 3x3 YOLOv5 Conv of the same width is the reference.
    """
    if not channels.strip().isdigit() or int(channels) < 1:
        raise NasError(f"--channels {channels!r}: give the feature-map width as a positive integer, e.g. 256")
    c = int(channels)
    h, w = _parse_size(imgsz)
    rows = block_rows(c, h, w)
    if as_json:
        click.echo(json.dumps([{**r, "gflops": round(r["gflops"], 9)} for r in rows]))
        return

    from rich.console import Console
    from rich.table import Table

    conv_flops = rows[0]["gflops"]
    console = Console()
    title = f"attention blocks on a {c}x{h}x{w} feature map (batch 1)"
    table = Table(title=title, title_justify="left")
    for col, justify in (
        ("block", "left"),
        ("params", "right"),
        ("GFLOPs", "right"),
        ("x Conv", "right"),
        ("defaults", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "defaults")
    for r in rows:
        hp = ", ".join(f"{k}={v}" for k, v in r["hyperparameters"].items())
        ratio = r["gflops"] / conv_flops if conv_flops else float("nan")
        table.add_row(r["block"], f"{r['params']:,}", f"{r['gflops']:.4f}", f"{ratio:.2f}", hp)
        if r["block"] == "Conv":
            table.add_section()
    console.print(table)
    for r in rows:
        console.print(f"[bold]{r['block']}[/]: {r['summary']}", highlight=False)
    console.print(
        "GFLOPs: 2 x multiply-accumulates of every conv and matrix product, counted on the meta device.",
        highlight=False,
    )
