"""The search's start-up step that measures (or reuses) the study's latency table, with a progress bar."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nas.latency.study import study_table
from nas.latency.table import LatencyTable


def measure_latency_table(console: Any, opts: Any, space: Any, study: Any, data_spec: Any) -> LatencyTable | None:
    """The study's latency table for `opts.latency`: reused when stored under the same key, else measured
    here with a progress bar and stored; says how long it took and whether the machine was too noisy."""
    nc = space.nc or (data_spec.nc if data_spec is not None else None)
    lat = opts.latency
    if not lat.wants_table(opts.budget):
        return None
    start = time.monotonic()
    measured = {"groups": 0}
    with Progress(TextColumn("measuring the latency table ({task.fields[what]})"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("table", total=None, what=f"{lat.runtime or 'torch'}, {lat.threads} thread(s)")

        def progress(done: int, total: int) -> None:
            measured["groups"] = done
            bar.update(task, completed=done, total=total)

        table = study_table(study, space, lat, opts.budget, opts.device, nc, progress=progress,
                            say=lambda text: console.print(f"[yellow]{text}[/]"))
    assert table is not None
    if measured["groups"]:
        console.print(f"latency table: {table.describe()}; measured in {time.monotonic() - start:.0f} s")
    else:
        console.print(f"latency table: {table.describe()}; reused from the study")
    return table


__all__ = ["measure_latency_table"]
