"""`nas pareto`: the feasible front of a study (fitness against GFLOPs or latency), as a table, JSON or a plot."""

from __future__ import annotations

import json

import click

from nas.commands._options import STORAGE_HELP, STUDY_HELP
from nas.files import check_output


@click.command("pareto")
@click.option(
    "--study", "study_name", default=None, help=STUDY_HELP
)
@click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@click.option(
    "--plot",
    "plot_path",
    default=None,
    metavar="FILE.png",
    help="Also draw every trial, the front, the baseline and the budget to this PNG.",
)
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["gflops", "latency"]),
    default=None,
    help="The plot's cost axis: gflops, or latency (predicted by the study's latency table; measured latency "
         "drawn beside it) [default: the study's --objective].",
)
@click.option(
    "--y",
    "y_axis",
    type=click.Choice(["fitness", "mAP50-95", "mAP50"]),
    default="fitness",
    show_default=True,
    help="The score on the plot's y axis.",
)
def command(study_name: str | None, storage: str | None, as_json: bool, plot_path: str | None, y_axis: str,
            x_axis: str | None) -> None:
    """The Pareto front of fitness (max) against the study's cost (min: GFLOPs, or latency with --objective
    latency) over the trials within the budget.

    Each row: trial, fitness, mAP50, mAP50-95, GFLOPs, the latency the study's table predicts and the one
    measured after training (when the study priced latency), params, the change against the baseline trial
    (the unmodified base model) and every choice (width, depth, the block at each point). Once `nas audit`
    has measured the seed noise, trials within it of a better one are marked as ties. With no feasible
    trial yet, the candidates closest to the budget are shown instead.

    \b
    Example:
      nas pareto --plot pareto.png
    """
    from pathlib import Path

    from nas.errors import NasError
    from nas.front.plot import plot_front
    from nas.front.report import front_report
    from nas.storage import load_nas_study, mask_url

    if plot_path:
        suffix = Path(plot_path).suffix.lower()
        if Path(plot_path).is_dir() or suffix not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
            raise NasError(f"--plot {plot_path}: name a picture file ending in .png, .pdf, .svg or .jpg, "
                           f"e.g. --plot front.png")
        check_output(plot_path, "--plot")
    study = load_nas_study(storage, study_name)
    report = front_report(study, mask_url(storage))
    if plot_path:
        plot_front(study, plot_path, y=y_axis, x=x_axis)
    if as_json:
        doc = report.to_json()
        doc["plot"] = plot_path
        click.echo(json.dumps(doc))
        return
    _print(report, plot_path)


def _print(report, plot_path: str | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from nas.console import console as make_console
    from nas.front.report import proxy_text
    from nas.front.table import excess_text, fmt, fmt_ms, fmt_params, front_table

    console = make_console(width=140)
    c = report.counts
    console.print(
        f"study [bold]{escape(report.study)}[/] in {escape(report.storage)}: {c['total']} trials, "
        f"{c.get('complete', 0)} complete, "
        f"{c['feasible']} feasible, {c.get('fail', 0)} failed; budget {report.budget.describe()}"
    )
    console.print(f"fitness from the proxy: {escape(proxy_text(report.proxy))}")
    if report.latency_table is not None:
        console.print(f"latency table: {escape(report.latency_table['describe'])}")
    base = report.baseline
    if report.front:
        console.print(front_table(report))
        if base is None:
            console.print("no baseline trial (user attr baseline=True) in this study: Δ columns are empty")
        else:
            latency = f", {fmt_ms(base.latency_ms)} predicted" if base.latency_ms is not None else ""
            console.print(
                f"Δ against the baseline, trial {base.trial}: fitness {fmt(base.fitness)}, "
                f"{fmt(base.gflops, '.3f')} GFLOPs{latency}, {fmt_params(base.params)} params"
            )
    else:
        console.print(f"[bold]no feasible trial yet[/] (budget {report.budget.describe()})")
        if report.closest:
            table = Table(title="closest to the budget (over it)", title_justify="left")
            latency = report.has_latency
            for col in ("trial", "fitness", "GFLOPs", *(["latency"] if latency else []), "params", "over by"):
                table.add_column(col, justify="right", no_wrap=True)
            table.add_column("choices", justify="left")
            for r in report.closest:
                table.add_row(str(r.trial), fmt(r.fitness), fmt(r.gflops, ".3f"),
                              *([fmt_ms(r.latency_ms)] if latency else []), fmt_params(r.params),
                              excess_text(r.excess), escape(r.choices_text))
            console.print(table)
            console.print("raise the budget (nas search --budget ...) or search a lighter space")
        else:
            console.print("no completed trial to compare; run `nas search` first")
    if plot_path:
        console.print(f"plot written to {escape(plot_path)}")
