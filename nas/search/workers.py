"""Worker processes of `nas search --workers K`: the extra processes that share the study, their threads,
and how a Ctrl-C reaches them. The first process runs the live view; each extra one logs to studies/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import NasError
from nas.lazy import lazy
from nas.storage import is_sqlite

torch = lazy("torch")

if TYPE_CHECKING:
    from collections.abc import Iterator

    from nas.search.options import SearchOptions

LOG_DIR = Path("studies")


def worker_command(opts: SearchOptions) -> list[str]:
    """The command line of one extra worker process for --workers K: `nas search-worker` with the search's
    options, one worker's worth (`workers` 1), as one JSON argument (SearchOptions.to_json)."""
    return [sys.executable, "-m", "nas.cli", "search-worker", replace(opts, workers=1).to_json()]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers(storage: str | None, device: str) -> int:
    """--workers auto: one process per usable core on the CPU, where the storage may be shared by several
    processes (a journal file or a server database, not SQLite); one process on a GPU."""
    if device != "cpu" or is_sqlite(storage):
        return 1
    return usable_cores()


def parse_workers(text: str | int | None, storage: str | None, device: str) -> int:
    """--workers: "auto" (the default) or a whole number of processes; NasError otherwise."""
    if text is None or str(text).strip().lower() == "auto":
        return default_workers(storage, device)
    try:
        return int(str(text).strip())
    except ValueError:
        raise NasError(f"--workers {text!r} is not a number of processes; use e.g. --workers 2, or auto "
                       f"(one per core: {usable_cores()} here)") from None


def threads_per_worker(workers: int) -> int:
    """Torch threads per process when K processes share this machine's cores."""
    return max(1, usable_cores() // workers)


def set_threads(workers: int) -> int:
    """Set this process's torch threads for K workers (NAS_THREADS, set for spawned workers, wins)."""
    threads = int(os.environ.get("NAS_THREADS", threads_per_worker(workers)))
    torch.set_num_threads(threads)
    return threads


def spawn_workers(opts: SearchOptions, study_name: str) -> list[subprocess.Popen]:
    """Start K-1 extra worker processes on the study, each logging to studies/<study>-worker<k>.log."""
    if opts.workers <= 1:
        return []
    threads = set_threads(opts.workers)
    env = dict(os.environ, NAS_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    LOG_DIR.mkdir(exist_ok=True)
    children = []
    for k in range(1, opts.workers):
        log = open(LOG_DIR / f"{study_name}-worker{k}.log", "a")  # noqa: SIM115 - owned by the child
        children.append(subprocess.Popen(worker_command(opts), env=env, stdout=log, stderr=log))
    return children


@contextmanager
def workers_stop_with_us(children: list[subprocess.Popen]) -> Iterator[None]:
    """On Ctrl-C pass SIGINT on to the workers and wait for them (each marks its trial for a re-run);
    on a normal end wait for them to finish their trials."""
    try:
        yield
    except KeyboardInterrupt:
        for child in children:
            child.send_signal(signal.SIGINT)
        for child in children:
            child.wait(timeout=60)
        raise
    for child in children:
        child.wait()


__all__ = ["set_threads", "spawn_workers", "threads_per_worker", "worker_command", "workers_stop_with_us"]
