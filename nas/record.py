"""The trial record: what one candidate left in the study, typed, written and read only here.

Optuna keeps it as trial user attributes under the names in docs/CONTRACTS.md (`fitness`, `mAP50-95`,
`outcome`, ...), short enough for optuna-dashboard's table; the long parts (per-epoch history, model YAML) are
trial artifacts. Everything else in nas reads a `TrialRecord` (and `read_history` / `read_model_yaml`) and
writes through `write` and its siblings here, so the stored names live in one place and studies written by
earlier versions still read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.trial import FrozenTrial


class Outcome(str, Enum):
    """What happened to a candidate; also the proxy trainer's status (trained, stopped or failed)."""

    TRAINED = "trained"  # trained to the last epoch
    STOPPED = "stopped"  # trained, stopped early (keeps its best score so far)
    REJECTED = "rejected"  # over the budget, never trained
    REUSED = "reused"  # same rendered model as a scored trial: its score is reused
    FAILED = "failed"  # the proxy run failed (non-finite loss, an exception, out of memory)

    def __str__(self) -> str:
        return self.value

    @property
    def scored(self) -> bool:
        """True when the candidate was trained by this trial (to the end or stopped early)."""
        return self in (Outcome.TRAINED, Outcome.STOPPED)


class CandidateFailed(Exception):  # noqa: N818 - the name says what happened
    """A candidate's proxy run failed (Outcome.FAILED); the search records it and goes on."""


INTERRUPTED = "interrupted by the user (Ctrl-C)"  # fail_reason of a trial a Ctrl-C stopped

# TrialRecord field -> stored user attribute name (only where they differ)
_STORED = {"mAP50_95": "mAP50-95"}
# fields kept as trial system attrs instead: long, and repeated by the trial's params (optuna-dashboard's table
# shows every user attr as a column, none of the system attrs)
_SYSTEM = {"arch": "nas:arch"}


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
        return _num((self.measured_latency or {}).get("ms"))

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
        return _num(self.values[0]) if self.values else self.fitness

    @property
    def objective_gflops(self) -> float | None:
        """GFLOPs: the stored `gflops`, else the second objective value (a GFLOPs study made without it)."""
        return self.gflops if self.gflops is not None else self.cost

    @property
    def cost(self) -> float | None:
        """The second objective value: GFLOPs or latency (ms) after the study's `objective`; None if unset."""
        return _num(self.values[1]) if self.values and len(self.values) > 1 else None

    @property
    def excess(self) -> dict[str, float]:
        """Constraint values above 0: how far over the budget, per limit."""
        return {k: float(v) for k, v in self.constraints.items() if float(v) > 0}


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int(value: Any) -> int | None:
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
        gflops=_num(a.get("gflops")),
        params=_int(a.get("params")),
        fitness=_num(a.get("fitness")),
        mAP50=_num(a.get("mAP50")),
        mAP50_95=_num(a.get("mAP50-95")),
        history=history if isinstance(history, list) else [],
        wall_time=_num(a.get("wall_time")),
        seed=_int(a.get("seed")),
        baseline=a.get("baseline") is True,
        over_budget=bool(a.get("over_budget")),
        fail_reason=a.get("fail_reason"),
        reused_from=_int(a.get("reused_from")),
        stopped_early=stopped if isinstance(stopped, dict) else None,
        rungs={str(k): v for k, v in (rungs if isinstance(rungs, dict) else {}).items() if _num(v) is not None},
        outcome=_outcome(a.get("outcome")),
        retry_of=_int(a.get("retry_of")),
        claimed=a.get("claimed") is True,
        host=a.get("host"),
        pid=_int(a.get("pid")),
        transfer=a.get("transfer") if isinstance(a.get("transfer"), dict) else None,
        latency_ms=_num(a.get("latency_ms")),
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


# ------------------------------------------------------------------------- constraints and artifacts

HEADER_START = "# nas export-best"  # first words of the provenance header (nas.export.header)
CONSTRAINTS_ATTR = "constraints"  # trial system attr: the list of constraint values optuna-dashboard reads


def set_constraints(trial: optuna.Trial, violations: dict[str, float]) -> None:
    """Record a candidate's budget violations (> 0: over) on a running trial, feasible ones too.

    Samplers read the named constraints (`trial.set_constraint`); optuna-dashboard reads only the system attr
    `constraints` as a list, so both are written, before the trial is told.
    """
    values = {k: float(v) for k, v in violations.items()}
    for key, value in values.items():
        trial.set_constraint(key, value)
    trial.storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_ATTR, list(values.values()))


def write_history(trial: optuna.Trial, history: list[dict], store: FileSystemArtifactStore | None) -> None:
    """Keep a trial's per-epoch records as the artifact `history-trial<N>.json` (the user attr when the
    artifact store cannot take it, so nothing is lost)."""
    import json

    from nas.storage import HISTORY_ARTIFACT, upload_text

    if store is not None:
        try:
            upload_text(trial.study, trial, HISTORY_ARTIFACT.format(number=trial.number), json.dumps(history),
                        store, "application/json")
            return
        except OSError:
            pass
    write(trial, history=history)


def write_model_yaml(trial: optuna.Trial, text: str, store: FileSystemArtifactStore, params: int,
                     gflops: float) -> None:
    """Upload a trial's rendered model YAML as `model-trial<N>.yaml`, headed like `nas export-best` output
    (the `model_yaml` user attr when the artifact store cannot take it, so a scored model is never lost)."""
    from pathlib import Path

    from nas.export import header
    from nas.storage import MODEL_YAML_ARTIFACT, save_model_yaml

    name = MODEL_YAML_ARTIFACT.format(number=trial.number)
    try:
        head = header(trial.study, trial, params, gflops, Path(name))
    except Exception:  # noqa: BLE001 - a study without nas attrs: the YAML alone still rebuilds the model
        head = ""
    try:
        save_model_yaml(trial.study, trial, head + text, store)
    except OSError:
        write(trial, model_yaml=text)


def read_history(study: optuna.Study, t: FrozenTrial, store: FileSystemArtifactStore | None) -> list[dict]:
    """A trial's per-epoch records: its history artifact, else the `history` user attr (studies made before
    the artifact), else those of the trial whose score it reused; [] when none is readable."""
    import json

    from nas.storage import HISTORY_ARTIFACT, read_text

    seen: set[int] = set()
    while t.number not in seen:
        seen.add(t.number)
        if store is not None:
            text = read_text(study, t, HISTORY_ARTIFACT.format(number=t.number), store)
            try:
                history = json.loads(text) if text else None
            except ValueError:
                history = None
            if isinstance(history, list):
                return history
        r = read(t)
        if r.history or r.reused_from is None:
            return r.history
        twins = [u for u in study.get_trials(deepcopy=False) if u.number == r.reused_from]
        if not twins:
            return []
        t = twins[0]
    return []


def read_model_yaml(study: optuna.Study, t: FrozenTrial, store: FileSystemArtifactStore | None) -> str | None:
    """A trial's rendered model YAML without its provenance header: its `model-trial<N>.yaml` artifact, else
    the `model_yaml` user attr (studies made before the artifact); None when neither is readable."""
    from nas.storage import read_model_yaml as read_artifact

    text = read_artifact(study, t, store) if store is not None else None
    if text and text.startswith(HEADER_START):  # written by the search: drop the header (the YAML starts `nc:`)
        lines = text.splitlines(keepends=True)
        while lines and lines[0].startswith("#"):
            lines.pop(0)
        text = "".join(lines)
    if text and text.strip():
        return text
    old = read(t).model_yaml
    return old if old and old.strip() else None


def missing_artifact(study: optuna.Study, t: FrozenTrial, what: str, store: FileSystemArtifactStore | None) -> str:
    """The message for a trial whose artifact is not here: where it was looked for and how to get it."""
    from nas.storage import store_folder

    host = read(t).host
    where = f"the artifact folder {store_folder(store)}" if store is not None else "no artifact folder here"
    ran = f" (trial {t.number} ran on {host})" if host else ""
    return (f"trial {t.number} of study {study.study_name!r} has no stored {what} readable here: {where}{ran}; "
            f"artifacts stay "
            f"on the machine that ran the search: run this command there, or copy its artifact folder here "
            f"(see `nas dashboard --artifact-dir`)")


# ------------------------------------------------------------------------------------------- study


@dataclass
class StudyRecord:
    """What `nas search` stores on the study itself (see docs/CONTRACTS.md)."""

    space_hash: str | None = None
    space_path: str | None = None
    base: str | None = None
    imgsz: tuple[int, int] | None = None
    budget: dict[str, Any] | None = None
    points: list[str] = field(default_factory=list)
    proxy: dict[str, Any] | None = None
    sampler: str | None = None
    nas_version: str | None = None
    created_by: str | None = None
    weights: dict[str, Any] | None = None  # --weights: the checkpoint fine-tuned from (name, path, sha256, ...)
    objective: str | None = None  # the front's cost axis: "gflops" (None: studies from before) or "latency"
    latency_on: dict[str, Any] | None = None  # {"runtime", "threads"}; the table itself: nas.latency.study

    @property
    def made_by_nas(self) -> bool:
        """True when `nas search` created the study (it writes `space_hash` last, after the rest)."""
        return self.space_hash is not None


def read_study(study: optuna.Study) -> StudyRecord:
    """The study's nas attributes; missing ones read as None."""
    a = study.user_attrs
    imgsz = a.get("imgsz")
    if isinstance(imgsz, int) and not isinstance(imgsz, bool):
        imgsz = (imgsz, imgsz)
    elif isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 and all(_int(v) is not None for v in imgsz):
        imgsz = (int(imgsz[0]), int(imgsz[1]))
    else:
        imgsz = None
    points = a.get("points")
    return StudyRecord(
        space_hash=a.get("space_hash"),
        space_path=a.get("space_path"),
        base=a.get("base"),
        imgsz=imgsz,
        budget=a.get("budget") if isinstance(a.get("budget"), dict) else None,
        points=list(points) if isinstance(points, list) else [],
        proxy=a.get("proxy"),
        sampler=a.get("sampler"),
        nas_version=a.get("nas_version"),
        created_by=a.get("created_by"),
        weights=a.get("weights") if isinstance(a.get("weights"), dict) else None,
        objective=a.get("objective") if isinstance(a.get("objective"), str) else None,
        latency_on=a.get("latency_on") if isinstance(a.get("latency_on"), dict) else None,
    )


def study_attrs(record: StudyRecord) -> dict[str, Any]:
    """A StudyRecord as the study user attrs to write (imgsz as [h, w], unset fields left out)."""
    out: dict[str, Any] = {}
    for key in StudyRecord.__dataclass_fields__:
        value = getattr(record, key)
        if key == "imgsz" and value is not None:
            value = list(value)
        if value is not None:
            out[key] = value
    return out


__all__ = ["CONSTRAINTS_ATTR", "INTERRUPTED", "CandidateFailed", "Outcome", "StudyRecord", "TrialRecord",
           "enqueue_attrs", "missing_artifact", "read", "read_history", "read_model_yaml", "read_study",
           "set_constraints", "study_attrs", "write", "write_history", "write_model_yaml"]


# ------------------------------------------------------------------------------------------ choices

_NO_BLOCK = ("none", "keep", "", "-")


def describe(candidate: TrialRecord | Any, points: list[str] | None = None) -> str:
    """All of a candidate's choices in one short line, the format every report shares.

    `candidate`: a TrialRecord, an Architecture, or its dict (the `arch` attr). E.g.
    'w0.375 d0.33 P3=SGE(groups=8) P5=FLA(num_heads=4)'; points left as none/keep are omitted, and a
    candidate without blocks reads 'w0.25 d0.33 (no blocks)'. `points` orders the points (others follow).
    """
    if isinstance(candidate, TrialRecord):
        arch, choices = candidate.arch or {}, dict(candidate.choices)
    elif isinstance(candidate, dict):
        arch, choices = candidate, {}
    else:  # an Architecture (or anything with the same attributes)
        arch = {"width_multiple": getattr(candidate, "width_multiple", None),
                "depth_multiple": getattr(candidate, "depth_multiple", None),
                "choices": getattr(candidate, "choices", None)}
        choices = {}
    if not choices and isinstance(arch.get("choices"), dict):
        choices = {p: _choice_text(c) for p, c in arch["choices"].items()}
    multiples = [f"{tag}{value:g}" for tag, value in (("w", _num(arch.get("width_multiple"))),
                                                      ("d", _num(arch.get("depth_multiple"))))
                 if value is not None]
    order = [p for p in (points or []) if p in choices] + [p for p in choices if p not in (points or [])]
    blocks = [f"{p}={choices[p]}" for p in order if str(choices[p]).strip().lower() not in _NO_BLOCK]
    return " ".join(multiples + (blocks or ["(no blocks)"]))


def _choice_text(choice: Any) -> str:
    """One point of an `arch` dict ({"block": "SGE", "groups": 8}) -> 'SGE(groups=8)', 'none' or 'keep'."""
    if not isinstance(choice, dict):
        return str(choice)
    hp = ", ".join(f"{k}={v}" for k, v in choice.items() if k != "block")
    block = str(choice.get("block", "none"))
    return f"{block}({hp})" if hp else block


__all__ += ["describe"]
