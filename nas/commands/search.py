"""`nas search`: budgeted multi-objective search over an SQL-backed (or journal) Optuna study."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click

SHIPPED = Path(__file__).resolve().parents[2] / "search_spaces"


def resolve_space_path(space: str) -> str:
    """A space path, or the name of a shipped space (neck, backbone, sppf, full)."""
    if Path(space).exists():
        return space
    shipped = SHIPPED / f"{space.removesuffix('.yaml')}.yaml"
    return str(shipped) if "/" not in space and shipped.exists() else space


@click.command("search")
@click.option("--space", "space", required=True, metavar="SPACE",
              help="Search-space YAML (e.g. search_spaces/neck.yaml) or a shipped name: neck, backbone, sppf, full.")
@click.option("--budget", "budget", multiple=True, required=True, metavar="BUDGET",
              help="Compute budget: 10gflops, '10 GFLOPs', 800MFLOPs, 1.2e10flops; repeat for a parameter budget "
                   "too: --budget 5M-params.")
@click.option("--trials", default=5, show_default=True, type=int,
              help="Stop when the study holds this many trained candidates (rejected and reused ones are free).")
@click.option("--timeout", default=None, metavar="DURATION", help="Stop after this long: 90s, 30m, 2h, 1h30m.")
@click.option("--study", "study_name", default=None, help="Study name [default: the space file's stem].")
@click.option("--storage", default=None, metavar="URL",
              help="sqlite:///studies/nas.db (default), journal:studies/nas.journal, postgresql://..., mysql://...")
@click.option("--sampler", default="tpe", show_default=True, type=click.Choice(["tpe", "nsga2", "gp", "random"]))
@click.option("--seed", default=0, show_default=True, type=int, help="Sampler and training seed.")
@click.option("--data", default=None, metavar="DATA_YAML",
              help="YOLO-format data YAML to score on [default: the built-in synthetic dataset].")
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(min=1), help="Proxy training epochs.")
@click.option("--imgsz", default=256, show_default=True, type=int, help="Proxy training image size.")
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1), help="Proxy batch size.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Worker processes on this machine sharing the study (needs a journal or server storage).")
@click.option("--early-stop/--no-early-stop", default=True, show_default=True,
              help="Stop proxy runs clearly behind finished trials that cost no more.")
@click.option("--worker", "is_worker", is_flag=True, hidden=True)
def command(space, budget, trials, timeout, study_name, storage, sampler, seed, data, epochs, imgsz, batch, device,
            workers, early_stop, is_worker) -> None:
    """Search where attention blocks go in a YOLOv5 model, under a compute budget.

    Candidates over the budget are rejected before training (counted on the meta device) and recorded as
    infeasible, so the sampler learns the boundary. The rest are trained briefly and scored by fitness
    (0.1 mAP50 + 0.9 mAP50-95). Running the same command again resumes the study.

    \b
    Example:
      nas search --space search_spaces/neck.yaml --budget 10gflops
    """
    from nas.budget import parse_budget
    from nas.search import SearchOptions, parse_duration, prepare

    opts = SearchOptions(space=resolve_space_path(space), budget=parse_budget(list(budget)), trials=trials,
                         timeout=parse_duration(timeout), study=study_name, storage=storage, sampler=sampler,
                         seed=seed, data=data, epochs=epochs, imgsz=imgsz, batch=batch, device=device,
                         workers=workers, early_stop=early_stop)
    space_obj = prepare(opts)
    if is_worker:
        _run_worker(opts, space_obj)
        return
    _run_main(opts, space_obj)


def _run_worker(opts, space) -> None:
    """An extra process of --workers K: same study, no display, one line per trial on stderr."""
    import torch

    from nas.search import Progress, open_study, resolve_search_data, run_search, threads_per_worker

    torch.set_num_threads(int(os.environ.get("NAS_THREADS", threads_per_worker(1))))
    opts.workers = 1
    opts.sampler_seed_offset = os.getpid()
    data_spec = resolve_search_data(opts, space)
    study = open_study(space, opts)

    def end(number, outcome, attrs):
        click.echo(f"[worker {os.getpid()}] trial {number}: {outcome} {attrs.get('fitness', '')}", err=True)

    try:
        run_search(opts, Progress(trial_end=end), space=space, study=study, data_spec=data_spec)
    except KeyboardInterrupt:
        sys.exit(130)


def _run_main(opts, space) -> None:
    import torch
    from rich.console import Console

    from nas.search import open_study, resolve_search_data, run_search, threads_per_worker, worker_command
    from nas.study import mask_url, refuse_sqlite_with_workers

    terminal = Console(stderr=True).is_terminal
    console = Console(stderr=True, width=None if terminal else 120, soft_wrap=not terminal)
    refuse_sqlite_with_workers(opts.storage, opts.workers)
    with console.status("preparing the data set..."):
        data_spec = resolve_search_data(opts, space)
    study = open_study(space, opts)  # validates the storage; refuses a different space or proxy
    children: list[subprocess.Popen] = []
    if opts.workers > 1:
        threads = threads_per_worker(opts.workers)
        torch.set_num_threads(threads)
        env = dict(os.environ, NAS_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        log_dir = Path("studies")
        log_dir.mkdir(exist_ok=True)
        for k in range(1, opts.workers):
            log = open(log_dir / f"{study.study_name}-worker{k}.log", "a")  # noqa: SIM115 - owned by the child
            children.append(subprocess.Popen(worker_command(opts), env=env, stdout=log, stderr=log))
        console.print(f"started {len(children)} more worker process(es); "
                      f"logs in studies/{study.study_name}-worker*.log")

    display = Display(console, opts, study, mask_url(opts.storage))
    try:
        with display.live():
            summary = run_search(opts, display.progress(), space=space, study=study, data_spec=data_spec)
    except KeyboardInterrupt:
        for child in children:
            child.send_signal(2)
        for child in children:
            child.wait(timeout=60)
        console.print("[yellow]interrupted[/]: the running trial is marked failed and will be re-run first; "
                      "run the same command to resume")
        sys.exit(130)
    for child in children:
        child.wait()
    _report(summary, opts)


class Display:
    """A rich live panel: current trial, epoch and batch, best fitness, front size, counts, time left."""

    def __init__(self, console, opts, study, storage_label: str):
        self.console = console
        self.opts = opts
        self.study = study
        self.storage = storage_label
        self.start = time.monotonic()
        self.current = ""
        self.epoch = (0, opts.epochs)
        self.batch = (0, 0)
        self.counts = {"trained": 0, "rejected": 0, "reused": 0, "failed": 0, "stopped": 0}
        self.best = None
        self.front = 0
        self.trial_times: list[float] = []
        self.trial_started = time.monotonic()
        self._live = None
        self._refresh_counts()

    def live(self):
        """A live panel on a terminal; on a pipe or a log file, plain lines per epoch and per trial instead."""
        import contextlib

        from rich.live import Live

        if not self.console.is_terminal:
            return contextlib.nullcontext()
        self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=True)
        return self._live

    def progress(self):
        from nas.search import Progress

        return Progress(trial_start=self.trial_start, epoch_end=self.epoch_end, batch_end=self.batch_end,
                        trial_end=self.trial_end)

    def _refresh_counts(self) -> None:
        from nas.search import Summary, summarize

        s = summarize(self.study, Summary(self.study.study_name, self.storage))
        self.counts = {"trained": s.trained, "rejected": s.rejected, "reused": s.reused, "failed": s.failed,
                       "stopped": s.stopped_early}
        self.front = len(s.front)
        if s.front:
            best = max(s.front, key=lambda r: r["fitness"])
            self.best = (best["fitness"], best["trial"], best["gflops"])

    def trial_start(self, number, choices, gflops) -> None:
        self.trial_started = time.monotonic()
        self._refresh_counts()  # the previous trial is complete (and on the front) only now
        parts = " ".join(f"{k}={v}" for k, v in choices.items())
        over = self.opts.budget.gflops is not None and gflops > self.opts.budget.gflops
        self.current = f"trial {number}: {parts} | {gflops:.2f} GFLOPs" + (" [red](over budget)[/]" if over else "")
        self.epoch, self.batch = (0, self.opts.epochs), (0, 0)
        if self._live is None:
            self.console.print(self.status_line(), highlight=False)
            self.console.print(self.current)
        self._update()

    def epoch_end(self, number, record) -> None:
        self.epoch = (int(record["epoch"]), self.opts.epochs)
        if self._live is None:
            self.console.print(f"  trial {number} epoch {record['epoch']}/{self.opts.epochs}: "
                               f"loss {record.get('loss', float('nan')):.4f} mAP50 {record.get('mAP50', 0):.4f} "
                               f"mAP50-95 {record.get('mAP50-95', 0):.4f} fitness {record.get('fitness', 0):.4f}",
                               highlight=False)
        self._update()

    def batch_end(self, epoch, i, nb) -> None:
        self.batch = (i, nb)
        self.epoch = (epoch - 1, self.opts.epochs)
        if self._live is not None:
            self._live.update(self.render())

    def trial_end(self, number, outcome, attrs) -> None:
        if outcome in ("trained", "stopped"):
            self.trial_times.append(time.monotonic() - self.trial_started)
        fit = attrs.get("fitness")
        note = f" fitness {fit:.4f}" if isinstance(fit, float) else ""
        if outcome == "stopped":
            note += f" (stopped early: {attrs.get('stopped_early', {}).get('reason', '')})"
        if outcome == "failed":
            note += f" ({attrs.get('fail_reason', '')})"
        self.console.print(f"{self.current.split(' | ')[0]} -> [bold]{outcome}[/]{note}")
        self._refresh_counts()
        self._update()

    def _update(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        done = self.counts["trained"]
        head = (f"[bold]{self.study.study_name}[/] in {self.storage} | budget {self.opts.budget.describe()} | "
                f"sampler {self.opts.sampler} | {done}/{self.opts.trials} trained")
        grid = Table.grid(padding=(0, 1))
        grid.add_row(head)
        grid.add_row(self.current or "starting...")
        e, ne = self.epoch
        b, nb = self.batch
        bar = ProgressBar(total=max(ne * max(nb, 1), 1), completed=e * max(nb, 1) + b, width=40)
        row = Table.grid(padding=(0, 1))
        row.add_row(f"epoch {min(e + 1, ne)}/{ne}", bar, f"batch {b}/{nb}" if nb else "")
        grid.add_row(row)
        grid.add_row(self.status_line())
        return Group(grid)

    def status_line(self) -> str:
        elapsed = time.monotonic() - self.start
        done = self.counts["trained"]
        if self.opts.timeout is not None:
            left_text = f"{_clock(max(0.0, self.opts.timeout - elapsed))} left (timeout)"
        elif self.trial_times:
            avg = sum(self.trial_times) / len(self.trial_times)
            left_text = f"~{_clock(avg * max(0, self.opts.trials - done))} left"
        else:
            left_text = "time left: after the first trial"
        best = "-" if self.best is None else f"{self.best[0]:.4f} (trial {self.best[1]}, {self.best[2]:.2f} GFLOPs)"
        c = self.counts
        return (f"best fitness {best} | front {self.front} | trained {c['trained']}/{self.opts.trials} "
                f"(stopped early {c['stopped']}) | rejected {c['rejected']} | reused {c['reused']} | "
                f"failed {c['failed']} | {_clock(elapsed)} elapsed, {left_text}")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _report(summary, opts) -> None:
    from rich.console import Console
    from rich.table import Table

    terminal = Console().is_terminal
    console = Console(width=None if terminal else 120, soft_wrap=not terminal)
    console.print(f"[bold]{summary.study}[/]: {summary.trained} trained ({summary.stopped_early} stopped early), "
                  f"{summary.rejected} rejected over budget, {summary.reused} reused, {summary.failed} failed"
                  + (f"; {summary.stopped_reason}" if summary.stopped_reason else ""))
    if not summary.front:
        console.print("no feasible trial yet: loosen --budget or see `nas pareto` for the closest candidates")
        return
    table = Table(title="Pareto front (fitness vs GFLOPs)", title_justify="left")
    for col in ("trial", "fitness", "GFLOPs", "params", "choices"):
        table.add_column(col, justify="right" if col != "choices" else "left")
    for r in summary.front:
        choices = " ".join(f"{k}={v}" for k, v in r["choices"].items())
        table.add_row(str(r["trial"]), f"{r['fitness']:.4f}", f"{r['gflops']:.2f}", f"{r['params']:,}", choices)
    console.print(table)
    study_flag = f" --study {summary.study}" if opts.study else ""
    storage_flag = f" --storage {opts.storage}" if opts.storage else ""
    console.print(f"next: nas pareto{study_flag}{storage_flag} | nas export-best{study_flag}{storage_flag} "
                  f"--out best.yaml")
