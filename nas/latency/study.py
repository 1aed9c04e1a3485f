"""A study's latency: the settings (`LatencySettings`, from --latency-on/--latency-threads/--objective), the
table kept in the study's user attrs under `latency_table` (measured once, reused while its key matches,
measured again and said so when it does not), and a trained candidate's measured latency.

The objective's cost axis is the study's `objective` user attr: "gflops" (absent in studies made before
latency existed) or "latency"; the second objective value of every trial is that cost.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from nas.budget import Budget, check_objective
from nas.errors import NasError
from nas.latency.measure import RETRIES, RUNTIMES, THRESHOLD, Latency, check_runtime, measure
from nas.latency.table import LatencyTable, key_hash, latency_key, measure_table
from nas.lazy import lazy
from nas.record import latency_table, read_study, write_latency_table

optuna = lazy("optuna")

METRIC_NAMES = {"gflops": ["fitness", "GFLOPs"], "latency": ["fitness", "latency_ms"]}
COST_LABEL = {"gflops": "GFLOPs", "latency": "latency (ms)"}


@dataclass(frozen=True)
class LatencySettings:
    """How the search prices latency. `runtime` None: --latency-on not given (a table only when a latency
    budget or --objective latency needs one, then on torch)."""

    objective: str = "gflops"
    runtime: str | None = None
    threads: int = 1

    def check(self) -> None:
        """NasError (one line) for an unknown objective/runtime, a bad thread count or onnxruntime missing."""
        check_objective(self.objective)
        check_runtime(self.runtime or "torch", self.threads)

    def wants_table(self, budget: Budget) -> bool:
        """A table is measured when asked for (--latency-on), or needed by the budget or the objective."""
        return self.runtime is not None or budget.latency_ms is not None or self.objective == "latency"

    def to_attr(self) -> dict[str, Any]:
        """The study's `latency_on` attr."""
        return {"runtime": self.runtime or "torch", "threads": self.threads}


def resume_settings(study: Any, name: str, settings: LatencySettings) -> LatencySettings:
    """The settings a resumed study goes on with: NasError for another --objective (the fronts' cost axes
    would not compare); without --latency-on, the runtime and threads the study's table was measured with."""
    stored = study_objective(study)
    if stored != settings.objective:
        raise NasError(f"study {name!r} was searched with --objective {stored}, not {settings.objective}; its "
                       f"front's cost axis would change: rerun with --objective {stored} or start a new study "
                       f"with --study {name}-{settings.objective}")
    on = read_study(study).latency_on
    if settings.runtime is None and on is not None and on.get("runtime") in RUNTIMES:
        return replace(settings, runtime=str(on["runtime"]), threads=int(on.get("threads", settings.threads)))
    return settings


def study_objective(study: Any) -> str:
    """The study's cost axis: "latency" or "gflops" (studies from before --objective)."""
    value = read_study(study).objective
    return value if value in METRIC_NAMES else "gflops"


def stored_table(study: Any) -> LatencyTable | None:
    """The study's latency table, or None (none stored, or a damaged / older-format one)."""
    raw = latency_table(study)
    if raw is None:
        return None
    try:
        return LatencyTable.from_dict(raw)
    except ValueError:
        return None


def study_table(study: Any, space: Any, settings: LatencySettings, budget: Budget, device: str = "cpu",
                nc: int | None = None, progress: Callable[[int, int], None] | None = None,
                say: Callable[[str], None] | None = None) -> LatencyTable | None:
    """The study's table for these settings: the stored one when its key matches, else measured now and
    stored (replacing one measured under another key, which `say` reports). None when no table is wanted."""
    if not settings.wants_table(budget):
        return None
    key = latency_key(space, settings.runtime or "torch", settings.threads, device, nc)
    old = stored_table(study)
    if old is not None and old.key == key:
        return old
    if old is not None and say is not None:
        changed = sorted(k for k in set(key) | set(old.key) if key.get(k) != old.key.get(k))
        say(f"the study's latency table was measured under another key ({', '.join(changed)} differ; table "
            f"{key_hash(old.key)}): measuring it again for {key_hash(key)}")
    table = measure_table(space, settings.runtime or "torch", settings.threads, device, nc, progress=progress)
    write_latency_table(study, table.to_dict(), settings.to_attr())
    if table.noisy and say is not None:
        entries = [e for m in table.multiples for e in (m.base, *m.slots)]
        say(f"warning: {sum(e.noisy for e in entries)} of {len(entries)} latency table entries kept a spread above "
            f"{THRESHOLD:.0%} after {RETRIES + 1} attempts (other work on this machine); predictions from this "
            f"table are less accurate")
    return table


def set_metric_names(study: Any, objective: str) -> None:
    """Name the objectives for optuna-dashboard after the study's cost axis."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if list(study.metric_names or []) != METRIC_NAMES[objective]:
            study.set_metric_names(METRIC_NAMES[objective])


def measure_candidate(cfg: dict, table: LatencyTable, imgsz: tuple[int, int], device: str = "cpu") -> Latency:
    """A trained candidate's real latency, measured the way the table was (runtime, threads, device)."""
    where = "cpu" if table.runtime == "onnxruntime" else device
    return measure(cfg, imgsz, runtime=table.runtime, threads=table.threads, device=where)


def latency_attr(lat: Latency) -> dict[str, Any]:
    """The trial's `measured_latency` user attr: ms, spread, noisy, repeats, runtime, threads, device."""
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in lat.to_dict().items()}


def cost_of(objective: str, gflops: float, latency_ms: float | None) -> float:
    """The second objective value of a candidate under the study's objective."""
    if objective == "latency":
        if latency_ms is None:
            raise ValueError("--objective latency needs the candidate's predicted latency (the latency table)")
        return float(latency_ms)
    return float(gflops)


__all__ = ["COST_LABEL", "METRIC_NAMES", "LatencySettings",
           "cost_of", "latency_attr", "measure_candidate", "resume_settings", "set_metric_names", "stored_table",
           "study_objective", "study_table"]
