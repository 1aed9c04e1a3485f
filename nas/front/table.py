"""The front as a rich table: the one layout `nas pareto` and the search's final summary print, and the cell
formats every report shares."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from nas.budget import format_params
from nas.front.report import FrontReport, TrialRow, noise_line
from nas.latency.measure import REPEATS, WARMUP

COST_TITLE = {"gflops": "GFLOPs", "latency": "latency"}


def fmt(value: float | None, spec: str = ".4f", signed: bool = False) -> str:
    """A number for a table cell; '-' for None."""
    if value is None:
        return "-"
    return format(value, ("+" if signed else "") + spec)


def fmt_params(value: int | None) -> str:
    return "-" if value is None else format_params(value)


def fmt_trial(r: TrialRow) -> str:
    """'7', '0 (baseline)', '19 (= 23)' or '0 (baseline) (= 16, 21)': the trial and the twins that reused its score."""
    text = f"{r.trial}{' (baseline)' if r.baseline else ''}"
    return text + (f" (= {', '.join(map(str, r.twins))})" if r.twins else "")


def fmt_ties(numbers: list[int] | None) -> str:
    """'≈ trial 4' / '≈ trials 4, 7'; '' for none (or unknown)."""
    if not numbers:
        return ""
    return ("≈ trial " if len(numbers) == 1 else "≈ trials ") + ", ".join(map(str, numbers))


def fmt_ms(value: float | None, signed: bool = False) -> str:
    """'68.2 ms' / '+3.1 ms'; '-' for None."""
    return "-" if value is None else format(value, "+.1f" if signed else ".1f") + " ms"


def excess_text(excess: dict[str, float] | None) -> str:
    """'gflops +0.412, latency_ms +12.3 ms': how far a trial is over each limit."""
    def one(k: str, v: float) -> str:
        if k == "gflops":
            return f"gflops +{v:.3f}"
        if k == "latency_ms":
            return f"latency +{v:.1f} ms"
        return f"{k} +{format_params(int(v))}"

    return ", ".join(one(k, v) for k, v in (excess or {}).items()) or "marked over budget"


def front_table(report: FrontReport, title: str | None = None) -> Table:
    """The front as a rich Table; latency columns (predicted by the study's table, measured after training)
    appear when the study priced latency, and the cost delta against the baseline is along the front's axis."""
    n = len(report.front)
    cost = COST_TITLE.get(report.objective, "GFLOPs")
    latency = report.has_latency
    table = Table(title=title or f"Pareto front ({n} trial{'s' if n != 1 else ''}): fitness vs {cost}",
                  title_justify="left", caption=escape(_caption(report)), caption_justify="left")
    # with latency the table trades mAP50 and params (both in --json) for the two latency columns, so that the
    # choices keep room at 120 columns; the cost delta shown is along the front's own axis
    columns = ["trial", "fitness", *([] if latency else ["mAP50"]), "mAP50-95", "GFLOPs"]
    columns += ["latency", "measured"] if latency else ["params"]
    by_latency = latency and report.objective == "latency"
    columns += ["Δfitness", "Δlatency" if by_latency else "ΔGFLOPs"]
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    if report.noise is not None:
        table.add_column("tie", justify="left", no_wrap=True)
    table.add_column("choices", justify="left", min_width=16)  # never squeezed out by the number columns
    for r in report.front:
        cells = [fmt_trial(r), fmt(r.fitness), *([] if latency else [fmt(r.mAP50)]), fmt(r.mAP50_95),
                 fmt(r.gflops, ".3f")]
        cells += [fmt_ms(r.latency_ms), fmt_ms(r.measured_latency_ms)] if latency else [fmt_params(r.params)]
        cells += [fmt(r.d_fitness, ".4f", True),
                  fmt_ms(r.d_latency_ms, True) if by_latency else fmt(r.d_gflops, ".4f", True)]
        if report.noise is not None:
            cells.append(fmt_ties(r.ties))
        table.add_row(*cells, escape(r.choices_text))
    return table


def _caption(report: FrontReport) -> str:
    lines = [noise_line(report.audit)]
    if report.latency_table is not None:
        lines.append(f"latency: predicted by the study's table ({report.latency_table['describe']}); measured: "
                     f"the trained candidate timed the same way (min of {REPEATS} after {WARMUP} warm-ups)")
    return "\n".join(lines)
