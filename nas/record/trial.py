"""The trial record: what one candidate left in the study, typed, written and read only here.

Optuna keeps it as trial user attributes under the names in docs/CONTRACTS.md (`fitness`, `mAP50-95`,
`outcome`, ...), short enough for optuna-dashboard's table; a few long or internal values are trial system
attributes (`nas:arch`, the dashboard's `constraints` list, the heartbeat). Everything else in nas reads a
`TrialRecord` and writes through `write` and its siblings here, so the stored names live in one place and
studies written by earlier versions still read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.outcome import CandidateFailed, Outcome

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial


INTERRUPTED = "interrupted by the user (Ctrl-C)"  # fail_reason of a trial a Ctrl-C stopped

# TrialRecord field -> stored user attribute name (only where they differ)
_STORED = {"mAP50_95": "mAP50-95"}
# fields kept as trial system attrs instead: long, and repeated by the trial's params (optuna-dashboard's table
# shows every user attr as a column, none of the system attrs)
_SYSTEM = {"arch": "nas:arch"}
CONSTRAINTS_ATTR = "constraints"  # trial system attr: the list of constraint values optuna-dashboard reads
HEARTBEAT_ATTR = "nas:heartbeat"  # trial system attr (journal storages): time.time() of the last beat


@dataclass
class TrialRecord:
    """One trial as nas recorded it; every field is optional because a trial may stop at any stage."""

    number: int = -1
    state: str = "RUNNING"  # optuna TrialState name
    values: tuple[float, ...] | None = None
    constraints: dict[str, float] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)
    candidate: str | None = None  # every choice in one short line (`describe`): the dashboard table's column
    arch: dict[str, Any] | None = None
    model_hash: str | None = None
    model_yaml: str | None = None
    gflops: float | None = None
    params: int | None = None
    fitness: float | None = None
    mAP50: float | None = None
    mAP50_95: float | None = None
    history: list[dict] = field(default_factory=list)
    wall_time: float | None = None
    seed: int | None = None
    baseline: bool = False
    over_budget: bool = False
    fail_reason: str | None = None
    reused_from: int | None = None
    stopped_early: dict[str, Any] | None = None
    rungs: dict[str, float] = field(default_factory=dict)  # successive halving: {"<epoch>": fitness at that rung}
    outcome: Outcome | None = None
    retry_of: int | None = None
    claimed: bool = False  # holds one of the --trials training slots (claimed before training)
    host: str | None = None  # machine and process that ran the trial (a dead process is failed at once)
    pid: int | None = None
    transfer: dict[str, Any] | None = None  # --weights: how much of the checkpoint it started from (nas.weights)
    latency_ms: float | None = None  # predicted by the study's latency table (nas.latency.study)
    measured_latency: dict[str, Any] | None = None  # a trained candidate measured for real: ms, spread, noisy, ...

    @property
    def measured_latency_ms(self) -> float | None:
        return as_float((self.measured_latency or {}).get("ms"))

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE"

    @property
    def scored(self) -> bool:
        """Complete and trained by this trial (not rejected, reused or failed)."""
        return self.complete and self.outcome is not None and self.outcome.scored

    @property
    def objective_fitness(self) -> float | None:
        """Fitness: the first objective value, else the stored `fitness` (failed trials)."""
        return as_float(self.values[0]) if self.values else self.fitness

    @property
    def objective_gflops(self) -> float | None:
        """GFLOPs: the stored `gflops`, else the second objective value (a GFLOPs study made without it)."""
        return self.gflops if self.gflops is not None else self.cost

    @property
    def cost(self) -> float | None:
        """The second objective value: GFLOPs or latency (ms) after the study's `objective`; None if unset."""
        return as_float(self.values[1]) if self.values and len(self.values) > 1 else None

    @property
    def excess(self) -> dict[str, float]:
        """Constraint values above 0: how far over the budget, per limit."""
        return {k: float(v) for k, v in self.constraints.items() if float(v) > 0}


def as_float(value: Any) -> float | None:
    """A stored number as a finite float; None for a missing, damaged or non-finite one."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def as_int(value: Any) -> int | None:
    """A stored whole number; None for anything else (bools included)."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _outcome(value: Any) -> Outcome | None:
    try:
        return Outcome(value)
    except ValueError:
        return None


def _named_constraints(merged: dict[str, float]) -> dict[str, float]:
    """Optuna merges the dashboard's list (keys "0", "1", ...) with the named constraints: keep the names,
    or the list alone for a study that has only the list."""
    named = {k: v for k, v in merged.items() if not k.isdigit()}
    return named or dict(merged)


def read(t: FrozenTrial) -> TrialRecord:
    """The record of a trial (frozen or running); unknown or damaged attributes read as missing."""
    a = t.user_attrs
    choices = a.get("choices")
    history = a.get("history")
    stopped = a.get("stopped_early")
    rungs = a.get("rungs")
    return TrialRecord(
        number=t.number,
        state=t.state.name if getattr(t, "state", None) is not None else "RUNNING",
        values=tuple(t.values) if getattr(t, "values", None) else None,
        constraints=_named_constraints(getattr(t, "constraints", None) or {}),
        choices=choices if isinstance(choices, dict) else {},
        candidate=a.get("candidate") if isinstance(a.get("candidate"), str) else None,
        arch=next((v for v in (a.get("arch"), getattr(t, "system_attrs", {}).get(_SYSTEM["arch"]))
                   if isinstance(v, dict)), None),
        model_hash=a.get("model_hash"),
        model_yaml=a.get("model_yaml") if isinstance(a.get("model_yaml"), str) else None,
        gflops=as_float(a.get("gflops")),
        params=as_int(a.get("params")),
        fitness=as_float(a.get("fitness")),
        mAP50=as_float(a.get("mAP50")),
        mAP50_95=as_float(a.get("mAP50-95")),
        history=history if isinstance(history, list) else [],
        wall_time=as_float(a.get("wall_time")),
        seed=as_int(a.get("seed")),
        baseline=a.get("baseline") is True,
        over_budget=bool(a.get("over_budget")),
        fail_reason=a.get("fail_reason"),
        reused_from=as_int(a.get("reused_from")),
        stopped_early=stopped if isinstance(stopped, dict) else None,
        rungs={str(k): v for k, v in (rungs if isinstance(rungs, dict) else {}).items() if as_float(v) is not None},
        outcome=_outcome(a.get("outcome")),
        retry_of=as_int(a.get("retry_of")),
        claimed=a.get("claimed") is True,
        host=a.get("host"),
        pid=as_int(a.get("pid")),
        transfer=a.get("transfer") if isinstance(a.get("transfer"), dict) else None,
        latency_ms=as_float(a.get("latency_ms")),
        measured_latency=a.get("measured_latency") if isinstance(a.get("measured_latency"), dict) else None,
    )


def write(trial: optuna.Trial, **fields: Any) -> None:
    """Store record fields on a running trial under their contract names (`mAP50_95` -> `mAP50-95`)."""
    known = TrialRecord.__dataclass_fields__
    for key, value in fields.items():
        if key not in known or key in ("number", "state", "values", "constraints"):
            raise TypeError(f"{key!r} is not a stored trial record field")
        if isinstance(value, Outcome):
            value = value.value
        if key in _SYSTEM:
            trial.storage.set_trial_system_attr(trial._trial_id, _SYSTEM[key], value)
        else:
            trial.set_user_attr(_STORED.get(key, key), value)


def enqueue_attrs(**fields: Any) -> dict[str, Any]:
    """Record fields as the user_attrs of `study.enqueue_trial` (the baseline mark, a retry's origin)."""
    return {_STORED.get(k, k): (v.value if isinstance(v, Outcome) else v) for k, v in fields.items()}


def enqueue(study: optuna.Study, params: dict[str, Any], **fields: Any) -> None:
    """Queue a trial with these params, its record starting with `fields` (baseline=True, retry_of=N)."""
    study.enqueue_trial(params, user_attrs=enqueue_attrs(**fields))


def set_constraints(trial: optuna.Trial, violations: dict[str, float]) -> None:
    """Record a candidate's budget violations (> 0: over) on a running trial, feasible ones too.

    Samplers read the named constraints (`trial.set_constraint`); optuna-dashboard reads only the system attr
    `constraints` as a list, so both are written, before the trial is told.
    """
    values = {k: float(v) for k, v in violations.items()}
    for key, value in values.items():
        trial.set_constraint(key, value)
    trial.storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_ATTR, list(values.values()))


def write_heartbeat(storage: BaseStorage, trial_id: int, when: float) -> None:
    """Stamp a running trial's heartbeat (the system attr `nas:heartbeat`, journal storages)."""
    storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, when)


def read_heartbeat(t: FrozenTrial) -> float | None:
    """The time of a trial's last heartbeat stamp; None when it never beat (or the stamp is damaged)."""
    return as_float(t.system_attrs.get(HEARTBEAT_ATTR))


__all__ = ["CONSTRAINTS_ATTR", "HEARTBEAT_ATTR", "INTERRUPTED", "CandidateFailed", "Outcome", "TrialRecord",
           "enqueue", "enqueue_attrs", "read", "read_heartbeat", "set_constraints", "write",
           "write_heartbeat"]
