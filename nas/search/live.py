"""The live view of a running search: a rich panel on a terminal, plain lines per epoch and trial on a pipe."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from nas.front.pareto import best, count_outcomes, pareto_front
from nas.record import Outcome, TrialRecord, read
from nas.search.options import Progress
from nas.weights.base import transfer_text


class TimeLeft:
    """Time left in a search, from the work done so far: seconds per epoch per GFLOP of the epochs trained,
    the running trial's remaining epochs at its size, and the trials left at the mean size and the mean number
    of epochs a trial has trained (early stops make that fewer than --epochs). Between two epochs it counts
    down with the clock; it holds nothing still while a trial runs."""

    def __init__(self, trials: int, epochs: int, clock: Callable[[], float] = time.monotonic):
        self.trials, self.epochs, self.clock = trials, epochs, clock
        self.epoch_seconds = 0.0  # summed over every epoch trained
        self.epoch_gflops = 0.0  # GFLOPs of the candidate of each of those epochs, summed
        self.sizes: list[float] = []  # GFLOPs of the candidates trained (or training)
        self.trained_epochs: list[int] = []  # epochs of each finished trained candidate
        self.current: float | None = None  # GFLOPs of the candidate training now
        self.done = 0  # its epochs done
        self.mark = clock()  # end of its last epoch (or its start)

    def trial_start(self, gflops: float) -> None:
        """A candidate starts training (over-budget ones never do: leave them out)."""
        self.current, self.done, self.mark = float(gflops), 0, self.clock()
        self.sizes.append(self.current)

    def epoch_end(self) -> None:
        now = self.clock()
        if self.current is None:
            return
        self.epoch_seconds += now - self.mark
        self.epoch_gflops += max(self.current, 1e-9)
        self.done, self.mark = self.done + 1, now

    def trial_end(self, trained: bool) -> None:
        if trained and self.done:
            self.trained_epochs.append(self.done)
        elif self.current is not None and not self.done:
            self.sizes.pop()  # reused or failed before an epoch: not a size the search trains
        self.current, self.done = None, 0

    def seconds(self, trained: int) -> float | None:
        """Seconds left with `trained` candidates finished; None until an epoch has been timed."""
        if self.epoch_gflops <= 0:
            return None
        rate = self.epoch_seconds / self.epoch_gflops  # seconds per epoch per GFLOP
        mean_size = sum(self.sizes) / len(self.sizes) if self.sizes else self.epoch_gflops / max(self.done, 1)
        per_trial = sum(self.trained_epochs) / len(self.trained_epochs) if self.trained_epochs else self.epochs
        left = 0.0
        running = self.current is not None
        if running:
            size = max(self.current, 1e-9)
            left += max(0, self.epochs - self.done) * rate * size - (self.clock() - self.mark)
        waiting = max(0, self.trials - trained - (1 if running else 0))
        return max(0.0, left + waiting * per_trial * rate * mean_size)


class Display:
    """A rich live panel: proxy settings, current trial, its epochs, best fitness, front size, counts, time left."""

    def __init__(self, console, opts, study, storage_label: str):
        self.console = console
        self.opts = opts
        self.study = study
        self.storage = storage_label
        self.start = time.monotonic()
        self.current = ""
        self.gflops = 0.0
        self.epoch = (0, opts.epochs)
        self.batch = (0, 0)
        self.last_epoch: dict | None = None  # the running trial's latest epoch record
        self.fitness_curve: list[float] = []  # ... and its fitness at each scored epoch
        self.counts = {"trained": 0, "rejected": 0, "reused": 0, "failed": 0, "stopped": 0}
        self.best = None
        self.front = 0
        self.time_left = TimeLeft(opts.trials, opts.epochs)
        self.headed = False
        self.weights_line = ""  # --weights: nas.weights.base.header_line, set by the search command
        self._live = None
        self._refresh_counts()

    def live(self):
        """A live panel on a terminal; on a pipe or a log file, plain lines per epoch and per trial instead."""
        if not self.console.is_terminal:
            return contextlib.nullcontext()
        self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=True)
        return self._live

    def progress(self):
        return Progress(trial_start=self.trial_start, epoch_end=self.epoch_end, batch_end=self.batch_end,
                        trial_end=self.trial_end)

    def _refresh_counts(self) -> None:
        counts = count_outcomes(self.study)
        self.counts = {k: counts[k] for k in ("trained", "rejected", "reused", "failed", "stopped")}
        front = pareto_front(self.study)
        self.front = len(front)
        if front:
            top = best(front)
            r = read(top)
            self.best = (top.values[0], top.number, cost_text(r))

    def header(self) -> str:
        """Study, storage, budget, sampler and the proxy settings every score is measured with."""
        o = self.opts
        data = o.data or f"synthetic ({o.synthetic_train} train / {o.synthetic_val} val images)"
        precision = getattr(o, "precision", None)
        proxy = f"proxy: {data}, {o.epochs} epochs, imgsz {o.imgsz}, batch {o.batch}, seed {o.seed}" + \
            (f", {precision}" if precision else "")
        return (f"[bold]{self.study.study_name}[/] in {self.storage} | budget {o.budget.describe()} | "
                f"sampler {o.sampler}\n{proxy}") + (f"\n{escape(self.weights_line)}" if self.weights_line else "")

    def trial_start(self, number: int, choices: str, gflops: float, latency_ms: float | None = None) -> None:
        """A candidate starts: `choices` is its short line (nas.record.describe), width and depth included;
        `latency_ms` the latency table's prediction (None without a table)."""
        self._refresh_counts()  # the previous trial is complete (and on the front) only now
        parts = choices
        budget = self.opts.budget
        over = (budget.gflops is not None and gflops > budget.gflops) or \
            (budget.latency_ms is not None and latency_ms is not None and latency_ms > budget.latency_ms)
        self.gflops = float(gflops)
        cost = f"{gflops:.2f} GFLOPs" + ("" if latency_ms is None else f", {latency_ms:.1f} ms predicted")
        self.current = f"trial {number}: {parts} | {cost}" + (" [red](over budget)[/]" if over else "")
        self.epoch, self.batch = (0, self.opts.epochs), (0, 0)
        self.last_epoch, self.fitness_curve = None, []
        if not over:
            self.time_left.trial_start(gflops)
        if self._live is None:
            if not self.headed:
                self.console.print(self.header(), highlight=False)
                self.headed = True
            self.console.print(self.status_line(), highlight=False)
            self.console.print(self.current)
        self._update()

    def epoch_end(self, number, record) -> None:
        self.epoch = (int(record["epoch"]), self.opts.epochs)
        self.last_epoch = dict(record)
        if record.get("fitness") is not None:
            self.fitness_curve.append(float(record["fitness"]))
        self.time_left.epoch_end()
        if self._live is None:
            self.console.print(f"  trial {number} epoch {record['epoch']}/{self.opts.epochs}: "
                               f"{epoch_metrics(record)}", highlight=False)
        self._update()

    def batch_end(self, epoch, i, nb) -> None:
        self.batch = (i, nb)
        self.epoch = (epoch - 1, self.opts.epochs)
        if self._live is not None:
            self._live.update(self.render())

    def trial_end(self, number: int, outcome: str, record: TrialRecord) -> None:
        self.time_left.trial_end(Outcome(outcome).scored)
        note = f" fitness {record.fitness:.4f}" if record.fitness is not None else ""
        if outcome == Outcome.STOPPED:
            note += f" (stopped early: {(record.stopped_early or {}).get('reason', '')})"
        if outcome == Outcome.FAILED:
            note += f" ({record.fail_reason or ''})"
        if outcome == Outcome.REJECTED:
            gflops = record.gflops if record.gflops is not None else self.gflops
            ms = "" if record.latency_ms is None else f", {record.latency_ms:.1f} ms"
            note += f" ({gflops:.2f} GFLOPs{ms}, budget {self.opts.budget.describe()}: never trained)"
        if record.measured_latency_ms is not None:
            note += f" · measured {measured_text(record)}"
        if outcome == Outcome.REUSED and record.reused_from is not None:
            note += f" (same model as trial {record.reused_from})"
        if record.transfer:
            note += f" · {transfer_text(record.transfer)}"
        self.console.print(f"{self.current.split(' | ')[0]} -> [bold]{outcome}[/]{note}")
        self._refresh_counts()
        self._update()

    def _update(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def render(self):
        grid = Table.grid(padding=(0, 1))
        grid.add_row(self.header())
        grid.add_row(self.current or "starting...")
        e, ne = self.epoch
        b, nb = self.batch
        bar = ProgressBar(total=max(ne * max(nb, 1), 1), completed=e * max(nb, 1) + b, width=40)
        row = Table.grid(padding=(0, 1))
        row.add_row(f"epoch {min(e + 1, ne)}/{ne}", bar, f"batch {b}/{nb}" if nb else "")
        grid.add_row(row)
        if self.last_epoch is not None:
            curve = " ".join(f"{f:.3f}" for f in self.fitness_curve[-12:])
            grid.add_row(f"  epoch {self.last_epoch['epoch']}: {epoch_metrics(self.last_epoch)}"
                         + (f" | fitness by epoch {curve}" if len(self.fitness_curve) > 1 else ""))
        grid.add_row(self.status_line())
        return Group(grid)

    def status_line(self) -> str:
        elapsed = time.monotonic() - self.start
        done = self.counts["trained"]
        left = self.time_left.seconds(done)
        if self.opts.timeout is not None:
            cap = max(0.0, self.opts.timeout - elapsed)
            left_text = f"{_clock(min(cap, left if left is not None else cap))} left (timeout {_clock(cap)})"
        elif left is not None:
            left_text = f"~{_clock(left)} left"
        else:
            left_text = "time left: after the first epoch"
        best = "-" if self.best is None else f"{self.best[0]:.4f} (trial {self.best[1]}, {self.best[2]})"
        c = self.counts
        return (f"{done}/{self.opts.trials} trained (stopped early {c['stopped']}) | rejected {c['rejected']} | "
                f"reused {c['reused']} | failed {c['failed']} | best fitness {best} | front {self.front} | "
                f"{_clock(elapsed)} elapsed, {left_text}")


def cost_text(r: TrialRecord) -> str:
    """'4.47 GFLOPs' and, when the study has a latency table, ', 66.1 ms'."""
    gflops = "-" if r.objective_gflops is None else f"{r.objective_gflops:.2f} GFLOPs"
    return gflops + ("" if r.latency_ms is None else f", {r.latency_ms:.1f} ms")


def measured_text(r: TrialRecord) -> str:
    """A trained candidate's measured latency next to the table's prediction, NOISY when flagged."""
    m = r.measured_latency or {}
    text = f"{r.measured_latency_ms:.1f} ms (spread {float(m.get('spread', 0)):.1%}"
    if r.latency_ms:
        text += f", table {(r.latency_ms - r.measured_latency_ms) / r.measured_latency_ms:+.1%}"
    text += ")"
    return text + (" [yellow]NOISY: the machine was too busy to measure[/]" if m.get("noisy") else "")


def epoch_metrics(record: dict) -> str:
    """One epoch's loss and, on scored epochs, its mAP50, mAP50-95 and fitness."""
    parts = [f"loss {record['loss']:.4f}"] if isinstance(record.get("loss"), (int, float)) else []
    parts += [f"{k} {record[k]:.4f}" for k in ("mAP50", "mAP50-95", "fitness") if record.get(k) is not None]
    return " ".join(parts) or "-"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


__all__ = ["Display", "TimeLeft", "epoch_metrics"]
