"""`nas blocks`: the attention blocks with their default hyperparameters, params and GFLOPs at one size."""

from __future__ import annotations

import json

import click

from nas.errors import NasError


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
    metavar="HxW",
    help="Feature-map size in cells, H or HxW (40x40 is P4 of a 640-pixel image).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of a table.")
def command(channels: str, imgsz: str, as_json: bool) -> None:
    """The attention blocks at their default hyperparameters: params and GFLOPs on one feature map.

    GFLOPs are 2 x multiply-accumulates of every convolution and matrix product (attention included) at
    the given size, counted on the meta device; a 3x3 YOLOv5 Conv of the same width is the reference.

    \b
    Example:
      nas blocks --channels 128 --imgsz 20x20
    """
    from dataclasses import asdict

    from nas.cost import block_costs
    from nas.model import parse_imgsz

    if not channels.strip().isdigit() or int(channels) < 1:
        raise NasError(f"--channels {channels!r}: give the feature-map width as a positive integer, e.g. 256")
    c = int(channels)
    try:
        h, w = parse_imgsz(imgsz.replace(",", "x"), stride=1)
    except NasError as e:
        raise NasError(f"--imgsz: feature-map {e}") from None
    rows = [asdict(r) for r in block_costs(c, h, w)]
    if as_json:
        click.echo(json.dumps([{**r, "gflops": round(r["gflops"], 9)} for r in rows]))
        return

    from rich.table import Table

    from nas.console import console as make_console

    conv_flops = rows[0]["gflops"]
    console = make_console()
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
