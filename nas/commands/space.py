"""`nas space`: what a search space holds and what each choice costs, to pick a budget before searching."""

from __future__ import annotations

import json

import click

from nas.commands._options import latency_options


@click.command("space")
@click.argument("space_path", metavar="SPACE", type=click.Path(dir_okay=False))
@click.option(
    "--detail", is_flag=True, help="List every hyperparameter setting instead of a range per block."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@latency_options("Also measure the space's latency table (what the search gates on; minutes at 640 px) and show "
                 "the milliseconds beside the GFLOPs: the base, the fastest and slowest candidate, every slot.")
def command(space_path: str, detail: bool, as_json: bool, latency: bool, latency_on: str, latency_threads: int,
            device: str) -> None:
    """Points, choices and costs of the search space SPACE (a YAML file or a shipped name such as neck).

    Shows how many distinct architectures the space holds, the GFLOPs and params of the smallest and largest
    ones at the space's imgsz, and what each block adds at each point; with --latency, the milliseconds too
    (measured here as the search measures its table: a slot's delta against the base, interleaved).

    \b
    Example:
      nas space neck --detail
      nas space neck --latency
    """
    from dataclasses import asdict

    from rich.table import Table

    from nas.console import console as make_console
    from nas.cost import space_costs
    from nas.space import load_space, n_architectures

    space = load_space(space_path)
    table = _latency_table(space, latency_on, latency_threads, device, quiet=as_json) if latency else None
    costs = space_costs(space)
    per_multiple = [asdict(r) for r in costs]
    speeds = _multiples_ms(table, space)
    smallest = min(per_multiple, key=lambda r: r["min_gflops"])
    largest = max(per_multiple, key=lambda r: r["max_gflops"])
    total = n_architectures(space)

    if as_json:
        doc = {
            "space": space.path,
            "hash": space.hash,
            "base": space.base,
            "imgsz": list(space.imgsz),
            "architectures": total,
            "smallest": {"gflops": smallest["min_gflops"], "params": smallest["min_params"]},
            "largest": {"gflops": largest["max_gflops"], "params": largest["max_params"]},
            "points": [
                {
                    "name": p.name,
                    "kind": p.kind,
                    "layer": p.layer,
                    "blocks": list(p.blocks),
                    "hyperparameters": p.hyperparameters,
                }
                for p in space.points
            ],
            "multiples": [
                {
                    **{k: v for k, v in r.items() if k != "slots"},
                    "slots": [
                        {
                            "point": s["point"],
                            "block": s["block"],
                            "hyperparameters": s["hyperparameters"],
                            "gflops": s["flops"] / 1e9,
                            "params": s["params"],
                            "shape": list(s["shape"]),
                            "ms": _slot_ms(table, r["depth_multiple"], r["width_multiple"], s["point"],
                                           s["block"], s["hyperparameters"]),
                        }
                        for s in r["slots"]
                    ],
                    **speeds.get((r["depth_multiple"], r["width_multiple"]), {}),
                }
                for r in per_multiple
            ],
            "latency_table": None if table is None else {"describe": table.describe(), "key": table.key},
        }
        click.echo(json.dumps(doc))
        return

    console = make_console()
    h, w = space.imgsz
    console.print(
        f"[bold]{space.name}[/] ({space.path}, hash {space.hash}): base {space.base}, costs at {h}x{w}"
    )
    if space.description:
        console.print(space.description)
    points = Table(title="Points", title_justify="left")
    for col in ("point", "where", "choices"):
        points.add_column(col)
    rows = space.base_cfg["backbone"] + space.base_cfg["head"]
    for p in space.points:
        where = (
            f"after layer {p.layer} ({rows[p.layer][2]})"
            if p.kind == "insert"
            else f"replaces layer {p.layer} ({rows[p.layer][2]})"
        )
        choices = []
        for b in p.blocks:
            sampled = {k: v for k, v in p.hyperparameters.get(b, {}).items() if len(v) > 1}
            choices.append(
                b + (" {" + ", ".join(f"{k}: {v}" for k, v in sampled.items()) + "}" if sampled else "")
            )
        points.add_row(p.name, where, "; ".join(choices))
    console.print(points)

    summary = Table(title="Size", title_justify="left")
    for col in (
        "depth",
        "width",
        "base GFLOPs",
        "base params",
        "smallest GFLOPs",
        "largest GFLOPs",
        "largest params",
        *(("base ms", "fastest ms", "slowest ms") if table is not None else ()),
    ):
        summary.add_column(col, justify="right")
    for r in per_multiple:
        ms = speeds.get((r["depth_multiple"], r["width_multiple"]), {})
        summary.add_row(
            f"{r['depth_multiple']:g}",
            f"{r['width_multiple']:g}",
            f"{r['base_gflops']:.2f}",
            f"{r['base_params']:,}",
            f"{r['min_gflops']:.2f}",
            f"{r['max_gflops']:.2f}",
            f"{r['max_params']:,}",
            *((f"{ms['base_ms']:.1f}", f"{ms['min_ms']:.1f}", f"{ms['max_ms']:.1f}") if table is not None else ()),
        )
    console.print(summary)
    if table is not None:
        console.print(f"latency table: {table.describe()} (a slot's ms: base + that block, minus the base, "
                      "interleaved; a candidate is predicted as base + its slots)")
    console.print(
        f"[bold]{total:,}[/] distinct architectures; smallest {smallest['min_gflops']:.2f} GFLOPs "
        f"({smallest['min_params']:,} params), largest {largest['max_gflops']:.2f} GFLOPs "
        f"({largest['max_params']:,} params)"
    )

    lat = table
    for r in costs:
        title = f"Cost each choice adds (depth {r.depth_multiple:g}, width {r.width_multiple:g})"
        table = Table(title=title, title_justify="left")
        for col, justify in (
            ("point", "left"),
            ("feature map", "left"),
            ("block", "left"),
            ("hyperparameters", "left"),
            ("+GFLOPs", "right"),
            ("+params", "right"),
            *((("+ms", "right"),) if lat is not None else ()),
        ):
            table.add_column(col, justify=justify)
        for p in space.points:
            mine = [s for s in r.slots if s.point == p.name]
            shape = "x".join(str(v) for v in mine[0].shape)
            for b in p.blocks:
                these = [s for s in mine if s.block == b]
                if detail or len(these) == 1:
                    for s in these:
                        hp = ", ".join(f"{k}={v}" for k, v in s.hyperparameters.items())
                        delta = _slot_ms(lat, r.depth_multiple, r.width_multiple, p.name, b, s.hyperparameters)
                        ms = [] if delta is None else [f"{delta:+.1f}"]
                        table.add_row(p.name, shape, b, hp, f"{s.flops / 1e9:+.3f}", f"{s.params:+,}", *ms)
                else:
                    f_lo, f_hi = min(s.flops for s in these), max(s.flops for s in these)
                    p_lo, p_hi = min(s.params for s in these), max(s.params for s in these)
                    ms = [] if lat is None else [_ms_range([_slot_ms(lat, r.depth_multiple, r.width_multiple, p.name, b,
                                                                      s.hyperparameters) for s in these])]
                    table.add_row(
                        p.name,
                        shape,
                        b,
                        f"{len(these)} settings",
                        f"{f_lo / 1e9:+.3f} .. {f_hi / 1e9:+.3f}",
                        f"{p_lo:+,} .. {p_hi:+,}",
                        *ms,
                    )
            table.add_section()
        console.print(table)


def _latency_table(space, runtime: str, threads: int, device: str, quiet: bool):
    """The space's latency table, measured now with a progress bar (on stderr; none with --json)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nas.console import console as make_console
    from nas.device import parse_device
    from nas.latency import check_runtime, measure_table

    check_runtime(runtime, threads)
    device = parse_device(device)
    with Progress(TextColumn(f"measuring the latency table ({runtime}, {threads} thread(s))"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=make_console(stderr=True), transient=True,
                  disable=quiet) as bar:
        task = bar.add_task("table", total=None)
        return measure_table(space, runtime, threads, device,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))


def _slot_ms(table, gd: float, gw: float, point: str, block: str, hp: dict) -> float | None:
    """A slot's latency delta (ms) from the table; None without one."""
    if table is None:
        return None
    from nas.latency.table import slot_ms

    return slot_ms(table, gd, gw, point, block, hp).ms


def _multiples_ms(table, space) -> dict:
    """(depth, width) -> {'base_ms', 'min_ms', 'max_ms'}; {} without a table."""
    if table is None:
        return {}
    from nas.latency import space_latencies

    return {(s.depth_multiple, s.width_multiple): {"base_ms": s.base_ms, "min_ms": s.min_ms, "max_ms": s.max_ms}
            for s in space_latencies(table, space)}


def _ms_range(values: list[float]) -> str:
    return f"{min(values):+.1f} .. {max(values):+.1f}"
