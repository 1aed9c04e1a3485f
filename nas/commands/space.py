"""`nas space`: what a search space holds and what each choice costs, to pick a budget before searching."""

from __future__ import annotations

import json

import click


@click.command("space")
@click.argument("space_path", metavar="SPACE", type=click.Path(dir_okay=False))
@click.option(
    "--detail", is_flag=True, help="List every hyperparameter setting instead of a range per block."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
def command(space_path: str, detail: bool, as_json: bool) -> None:
    """Points, choices and costs of the search space SPACE (a YAML file or a shipped name such as neck).

    Shows how many distinct architectures the space holds, the GFLOPs and params of the smallest and largest
    ones at the space's imgsz, and what each block adds at each point.

    \b
    Example:
      nas space neck --detail
    """
    from dataclasses import asdict

    from rich.table import Table

    from nas.console import console as make_console
    from nas.cost import space_costs
    from nas.space import load_space, n_architectures

    space = load_space(space_path)
    per_multiple = [asdict(r) for r in space_costs(space)]
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
                        }
                        for s in r["slots"]
                    ],
                }
                for r in per_multiple
            ],
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
    ):
        summary.add_column(col, justify="right")
    for r in per_multiple:
        summary.add_row(
            f"{r['depth_multiple']:g}",
            f"{r['width_multiple']:g}",
            f"{r['base_gflops']:.2f}",
            f"{r['base_params']:,}",
            f"{r['min_gflops']:.2f}",
            f"{r['max_gflops']:.2f}",
            f"{r['max_params']:,}",
        )
    console.print(summary)
    console.print(
        f"[bold]{total:,}[/] distinct architectures; smallest {smallest['min_gflops']:.2f} GFLOPs "
        f"({smallest['min_params']:,} params), largest {largest['max_gflops']:.2f} GFLOPs "
        f"({largest['max_params']:,} params)"
    )

    for r in space_costs(space):
        title = f"Cost each choice adds (depth {r.depth_multiple:g}, width {r.width_multiple:g})"
        table = Table(title=title, title_justify="left")
        for col, justify in (
            ("point", "left"),
            ("feature map", "left"),
            ("block", "left"),
            ("hyperparameters", "left"),
            ("+GFLOPs", "right"),
            ("+params", "right"),
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
                        table.add_row(p.name, shape, b, hp, f"{s.flops / 1e9:+.3f}", f"{s.params:+,}")
                else:
                    f_lo, f_hi = min(s.flops for s in these), max(s.flops for s in these)
                    p_lo, p_hi = min(s.params for s in these), max(s.params for s in these)
                    table.add_row(
                        p.name,
                        shape,
                        b,
                        f"{len(these)} settings",
                        f"{f_lo / 1e9:+.3f} .. {f_hi / 1e9:+.3f}",
                        f"{p_lo:+,} .. {p_hi:+,}",
                    )
            table.add_section()
        console.print(table)
