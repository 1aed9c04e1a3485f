"""`nas audit`: measure how well a study's proxy ranks candidates against longer training."""

from __future__ import annotations

import json
import math
import sys
import time

import click

from nas.commands._options import DEVICE_HELP, STORAGE_HELP, STUDY_HELP
from nas.files import check_output


@click.command("audit")
@click.option("--study", "study_name", default=None, help=STUDY_HELP)
@click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)
@click.option("--candidates", default=12, show_default=True, type=int,
              help="How many scored trials to audit, spread over fitness and GFLOPs (baseline and front included).")
@click.option("--reference-epochs", default=None, type=int, metavar="E",
              help="Epochs of the reference runs [default: 4x the study's proxy epochs].")
@click.option("--seeds", default=2, show_default=True, type=int, help="Extra proxy seeds per candidate (seed noise).")
@click.option("--models", multiple=True, metavar="MODEL",
              help="Audit these models instead of trials (built-in names or YAMLs); repeat or list after one flag.")
@click.option("--plot", "plot_path", default=None, metavar="FILE.png", help="Draw proxy vs reference and τ per epoch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.option("--device", default="cpu", show_default=True, metavar="DEVICE", help=DEVICE_HELP)
@click.option("--max-jobs", default=None, type=int, metavar="N",
              help="Run at most N training jobs now (0: only report); the same command continues later.")
@click.option("--weights", default=None, metavar="CHECKPOINT.pt",
              help="The checkpoint the study fine-tuned from (its sha256 must match the study's) [default: the "
                   "path the study recorded, when that file is here and unchanged]. Every run fine-tunes from it.")
@click.argument("more_models", nargs=-1, metavar="")
def command(study_name, storage, candidates, reference_epochs, seeds, models, plot_path, as_json, device, max_jobs,
            weights, more_models) -> None:
    """Measure how well the search's short proxy ranks candidates, against longer training.

    Trains a spread of the study's candidates longer (the reference) and at more seeds, and reports how well
    the proxy's ranking agrees: Kendall τ and Spearman ρ with bootstrap intervals, against GFLOPs alone and other
    scores, τ per proxy epoch, seed noise and a verdict; and, when the study priced latency, how differently
    GFLOPs and latency order its candidates (Kendall τ, the share of pairs in opposite order, the worst pair).
    Every run is stored as it finishes (in the study
    `<study>.audit` of the same storage): the same command resumes, and several workers on a server or journal
    storage share the runs. A finished audit also shows in `nas dashboard` (study note and artifacts).

    \b
    Examples:
      nas audit --candidates 12 --plot audit.png
      nas audit --models yolov5n yolov5s yolov5m
    """
    from pathlib import Path

    from nas.audit import AuditOptions, prepare, run_audit
    from nas.errors import NasError

    if more_models and not models:
        extra = " ".join(more_models)
        raise NasError(f"unexpected argument(s) {extra}; did you mean --models {extra}?")
    if plot_path and (Path(plot_path).is_dir() or Path(plot_path).suffix.lower() not in (".png", ".pdf", ".svg")):
        raise NasError(f"--plot {plot_path}: name a picture file ending in .png, .pdf or .svg, e.g. --plot audit.png")
    if plot_path:
        check_output(plot_path, "--plot")  # refused before hours of training, not after
    opts = AuditOptions(study=study_name, storage=storage, candidates=candidates, reference_epochs=reference_epochs,
                        seeds=seeds, models=[*models, *more_models], device=device, max_jobs=max_jobs,
                        weights=weights)
    plan = prepare(opts)
    display = Display(plan)
    if plan.base is not None:  # every run, proxy repeats and references, fine-tunes from the study's checkpoint
        from nas.weights.base import header_line

        display.console.print(header_line(plan.base, plan.data.nc, narrowed=False) + " (every run)", highlight=False)
    try:
        with display:
            result = run_audit(opts, display.hooks(), plan=plan)
    except KeyboardInterrupt:
        click.echo("interrupted: finished runs are kept; run the same command to continue", err=True)
        sys.exit(130)
    if plot_path:
        from nas.audit.report import plot

        plot(result.report, plot_path)
    from nas.audit.costs import cost_order
    from nas.record import read

    order = cost_order(read(t) for t in plan.study.get_trials(deepcopy=False))  # GFLOPs against latency
    if as_json:
        doc = result.report.to_json()
        doc.update({"storage": result.storage, "aux_study": result.aux_study, "ran": result.ran,
                    "recovered": result.recovered, "stored": result.stored, "plot": plot_path,
                    "cost_order": None if order is None else order.to_json()})
        click.echo(json.dumps(doc))
        return
    _print(result, plot_path, order)


class Display:
    """A rich progress bar on a terminal (jobs, and epochs of the current job); plain lines on a pipe."""

    def __init__(self, plan):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.terminal = self.console.is_terminal
        self.total = len(plan.jobs)
        self.progress = None
        self.started = 0.0

    def __enter__(self):
        if self.terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.__enter__()
            self.jobs_task = self.progress.add_task("audit runs", total=self.total)
            self.epoch_task = self.progress.add_task("", total=1, visible=False)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False

    def hooks(self):
        from nas.audit.jobs import WorkerHooks

        return WorkerHooks(job_start=self.job_start, epoch_end=self.epoch_end, batch_end=self.batch_end,
                           job_end=self.job_end)

    def _name(self, job: dict) -> str:
        return f"{job['label']} {job['kind']} ({job['epochs']} epochs, seed {job['seed']})"

    def job_start(self, job: dict) -> None:
        self.started = time.monotonic()
        if self.progress is None:
            self.console.print(f"run {self._name(job)}", highlight=False)
        else:
            self.progress.update(self.epoch_task, description=self._name(job), total=int(job["epochs"]),
                                 completed=0, visible=True)

    def epoch_end(self, job: dict, record: dict) -> None:
        if self.progress is None:
            self.console.print(f"  epoch {record['epoch']}/{job['epochs']}: fitness {record.get('fitness', 0):.4f}",
                               highlight=False)
        else:
            self.progress.update(self.epoch_task, completed=int(record["epoch"]))

    def batch_end(self, epoch: int, i: int, nb: int) -> None:
        if self.progress is not None:
            self.progress.update(self.epoch_task, completed=epoch - 1 + i / max(nb, 1))

    def job_end(self, job: dict, run: dict) -> None:
        note = f"fitness {run['fitness']:.4f}" if run["status"] != "failed" else f"failed: {run['reason']}"
        line = f"{self._name(job)}: {note} ({time.monotonic() - self.started:.0f}s)"
        if self.progress is None:
            self.console.print(line, highlight=False)
        else:
            self.progress.console.print(line, highlight=False)
            self.progress.advance(self.jobs_task)


def _f(x, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _print(result, plot_path, order) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from nas.audit import SCORES

    r = result.report
    console = Console(width=None if Console().is_terminal else 140)
    console.print(f"audit of [bold]{escape(r.study)}[/] in {escape(result.storage)} "
                  f"(runs in {escape(result.aux_study)}): "
                  f"{r.jobs_done}/{r.jobs_total} runs finished ({result.ran} now"
                  + (f", {len(result.recovered)} from dead processes re-queued" if result.recovered else "")
                  + f"); proxy {r.proxy_epochs} epochs, reference {r.reference_epochs} epochs, {r.seeds} extra seeds")
    t = Table(title="candidates", title_justify="left")
    for col in ("candidate", "GFLOPs", "params", "proxy", "seeds", "mean", "sd", "reference"):
        t.add_column(col, justify="left" if col in ("candidate", "seeds") else "right")
    for row in r.rows:
        seeds = " ".join(_f(v) for v in row["seeds"].values())  # proxy fitness at each seed, study seed first
        t.add_row(row["label"] + (" (baseline)" if row["baseline"] else ""), _f(row["gflops"], 2),
                  f"{row['params']:,}", _f(row["proxy"]), seeds, _f(row["mean"]), _f(row["sd"]), _f(row["reference"]))
    console.print(t)
    t = Table(title=f"rank agreement with the reference (n={r.n}; 95% bootstrap intervals)", title_justify="left")
    for col in ("score", "Kendall τ", "interval", "Spearman ρ", "interval", "what"):
        t.add_column(col, justify="left" if col in ("score", "what") else "right")
    for name, what in SCORES.items():
        c = r.correlations[name]
        t.add_row(name, _f(c.tau, 2), f"[{_f(c.tau_low, 2)}, {_f(c.tau_high, 2)}]", _f(c.rho, 2),
                  f"[{_f(c.rho_low, 2)}, {_f(c.rho_high, 2)}]", what)
    console.print(t)
    if r.tau_per_epoch:
        per = "  ".join(f"{p['epoch']}: {_f(p['tau'], 2)}" for p in r.tau_per_epoch)
        formed = f" (formed from epoch {r.formed_epoch})" if r.formed_epoch else ""
        console.print(f"τ per proxy epoch: {per}{formed}")
    console.print(f"seed noise: pooled sd {_f(r.noise_sd, 4)}; seed-vs-seed τ {_f(r.seed_tau, 2)}")
    console.print(f"[bold]verdict[/]: {escape(r.verdict)}")
    if order is not None:
        console.print(escape(order.line()))
        if order.discordant > 0:
            console.print("a GFLOPs front can mislead where latency is the cost: search with --objective latency "
                          "(nas search --help)")
    else:
        console.print("GFLOPs vs latency: unknown (the study priced no latency; search with --latency-on torch)")
    if plot_path:
        console.print(f"plot: {plot_path}")
