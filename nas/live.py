"""The live view of a running search: a rich panel on a terminal, plain lines per epoch and trial on a pipe."""

from __future__ import annotations

import time

from nas.pareto import best, count_outcomes, pareto_front
from nas.record import Outcome, TrialRecord


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
        counts = count_outcomes(self.study)
        self.counts = {k: counts[k] for k in ("trained", "rejected", "reused", "failed", "stopped")}
        front = pareto_front(self.study)
        self.front = len(front)
        if front:
            top = best(front)
            self.best = (top.values[0], top.number, top.values[1])

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

    def trial_end(self, number: int, outcome: str, record: TrialRecord) -> None:
        if Outcome(outcome).scored:
            self.trial_times.append(time.monotonic() - self.trial_started)
        note = f" fitness {record.fitness:.4f}" if record.fitness is not None else ""
        if outcome == Outcome.STOPPED:
            note += f" (stopped early: {(record.stopped_early or {}).get('reason', '')})"
        if outcome == Outcome.FAILED:
            note += f" ({record.fail_reason or ''})"
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



__all__ = ["Display"]
