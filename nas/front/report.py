"""Reading a finished (or running) study: the Pareto front as plain rows (`front_report`) and its JSON. The rich
table is nas.front.table's, the picture nas.front.plot's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from nas.budget import Budget
from nas.front.pareto import closest_to_budget, count_outcomes, is_feasible, pareto_front, ties, twins
from nas.latency.study import stored_table, study_objective
from nas.record import AuditSummary, Outcome, audit_summary, describe, read, read_study

OUTCOMES = {o.value for o in Outcome}

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


@dataclass
class TrialRow:
    """One trial as the results commands show it."""

    trial: int
    state: str
    fitness: float | None
    mAP50: float | None
    mAP50_95: float | None
    gflops: float | None
    latency_ms: float | None  # predicted by the study's latency table; None when the study has none
    measured_latency_ms: float | None  # measured for real after training (trained candidates only)
    params: int | None
    choices: dict[str, str]  # point -> 'none' | 'SGE(groups=8)' ...
    choices_text: str  # every choice in one short line (nas.record.describe), width and depth included
    width_multiple: float | None
    depth_multiple: float | None
    feasible: bool
    over_budget: bool
    baseline: bool
    d_fitness: float | None = None  # against the baseline trial
    d_gflops: float | None = None
    d_latency_ms: float | None = None  # predicted, against the baseline's prediction
    excess: dict[str, float] | None = None  # constraint values > 0 (infeasible trials)
    fail_reason: str | None = None
    ties: list[int] | None = None  # better front members within the audit's noise; None = noise unknown
    twins: list[int] = field(default_factory=list)  # later trials that reused this trial's score (same model)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["mAP50-95"] = doc.pop("mAP50_95")
        return doc


def number_or_none(value: Any) -> float | None:
    """A stored int or float as a float; None for anything else (a bool, a string, a missing value)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def baseline_trial(study: optuna.Study) -> FrozenTrial | None:
    """The completed trial marked `baseline=True` (the unmodified base model), if any."""
    for t in study.get_trials(deepcopy=False):
        r = read(t)
        if r.complete and r.baseline:
            return t
    return None


def study_budget(study: optuna.Study) -> Budget:
    """The budget recorded in the study's user attrs."""
    return Budget.from_attr(read_study(study).budget)


def trial_row(
    t: FrozenTrial, baseline: FrozenTrial | None = None, points: list[str] | None = None
) -> TrialRow:
    """A FrozenTrial -> TrialRow (deltas against `baseline` when given)."""
    r = read(t)
    fitness, gflops = r.objective_fitness, r.objective_gflops
    arch = r.arch or {}
    row = TrialRow(
        trial=t.number,
        state=r.state,
        fitness=fitness,
        mAP50=r.mAP50,
        mAP50_95=r.mAP50_95,
        gflops=gflops,
        latency_ms=r.latency_ms,
        measured_latency_ms=r.measured_latency_ms,
        params=r.params,
        choices=dict(r.choices),
        choices_text=describe(r, points),
        width_multiple=number_or_none(arch.get("width_multiple")),
        depth_multiple=number_or_none(arch.get("depth_multiple")),
        feasible=is_feasible(t),
        over_budget=r.over_budget or bool(r.excess),
        baseline=r.baseline,
        fail_reason=r.fail_reason,
        excess=r.excess or None,
    )
    if baseline is not None and fitness is not None and gflops is not None:
        b = read(baseline)
        bf, bg = b.objective_fitness, b.objective_gflops
        row.d_fitness = None if bf is None else fitness - bf
        row.d_gflops = None if bg is None else gflops - bg
        if r.latency_ms is not None and b.latency_ms is not None:
            row.d_latency_ms = r.latency_ms - b.latency_ms
    return row


@dataclass
class FrontReport:
    """Everything `nas pareto` shows, as plain data."""

    study: str
    storage: str
    budget: Budget
    points: list[str]
    counts: dict[str, int]
    baseline: TrialRow | None
    front: list[TrialRow]
    closest: list[TrialRow]  # only when the front is empty
    proxy: dict[str, Any] | None = None  # the study's proxy settings (data, epochs, imgsz, batch, seed)
    audit: AuditSummary | None = None  # the last finished `nas audit` of the study
    objective: str = "gflops"  # the front's cost axis: "gflops" or "latency"
    latency_table: dict[str, Any] | None = None  # {"describe", "key", "noisy"} of the study's latency table

    @property
    def has_latency(self) -> bool:
        """True when any row shown carries a predicted latency (the study priced latency)."""
        return any(r.latency_ms is not None for r in [*self.front, *self.closest])

    @property
    def noise(self) -> float | None:
        """The fitness difference the audit measured as noise (2 x seed sd); None when unknown."""
        return None if self.audit is None else self.audit.noise

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "budget": self.budget.to_attr(),
            "points": self.points,
            "proxy": self.proxy,
            "objective": self.objective,
            "latency_table": self.latency_table,
            "trials": self.counts,
            "noise": self.noise,
            "audit": None if self.audit is None else self.audit.to_attr(),
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "front": [r.to_json() for r in self.front],
            "closest_to_budget": [r.to_json() for r in self.closest],
        }


def front_report(study: optuna.Study, storage_label: str = "") -> FrontReport:
    """The feasible front with baseline deltas and ties within the audit's noise, or the candidates closest
    to the budget when the front is empty."""
    trials = study.get_trials(deepcopy=False)
    sr = read_study(study)
    points = sr.points
    budget = study_budget(study)
    base = baseline_trial(study)
    audit = audit_summary(study)
    front_trials = pareto_front(trials)
    tie_map = ties(front_trials, None if audit is None else audit.noise)
    front = [trial_row(t, base, points) for t in front_trials]
    twin_map = twins(trials)
    for row in front:
        row.ties = None if tie_map is None else tie_map[row.trial]
        row.twins = twin_map.get(row.trial, [])
    closest = [] if front else [trial_row(t, base, points) for t in closest_to_budget(study, budget)]
    return FrontReport(
        study=study.study_name,
        storage=storage_label,
        budget=budget,
        points=points,
        counts={k: v for k, v in count_outcomes(trials).items() if k not in OUTCOMES},  # states, feasible, total
        baseline=None if base is None else trial_row(base, None, points),
        front=front,
        closest=closest,
        proxy=sr.proxy if isinstance(sr.proxy, dict) else None,
        audit=audit,
        objective=study_objective(study),
        latency_table=latency_table_doc(study),
    )


def latency_table_doc(study: optuna.Study) -> dict[str, Any] | None:
    """What the study's latency table was measured under, for reports: None when it has none."""
    table = stored_table(study)
    if table is None:
        return None
    return {"describe": table.describe(), "key": dict(table.key), "noisy": table.noisy}


def noise_line(audit: AuditSummary | None) -> str:
    """One line on what the measured noise says about ties (or that it is unknown until `nas audit`)."""
    if audit is None:
        return "ties: unknown until `nas audit` measures the seed noise"
    if audit.noise is None:
        return "ties: unknown (the audit ran no extra seeds; rerun `nas audit --seeds 2`)"
    tau = "-" if audit.tau is None else f"{audit.tau:.2f}"
    return (f"noise: fitness differences up to {audit.noise:.4f} are noise (nas audit: 2 x seed sd, τ {tau} "
            f"against {audit.reference_epochs}-epoch training, {audit.n_candidates} candidates); "
            "≈ marks a front trial that ties with a better-scoring one")


def proxy_text(proxy: dict[str, Any] | None) -> str:
    """The proxy settings behind the fitness in one line: data, epochs, imgsz, batch, seed."""
    if not proxy:
        return "unknown (the study records no proxy settings)"
    data = proxy.get("data", "-")
    synthetic = proxy.get("synthetic")
    if data == "synthetic" and isinstance(synthetic, list) and len(synthetic) == 2:
        data = f"synthetic ({synthetic[0]} train / {synthetic[1]} val images)"
    epochs = proxy.get("epochs", "-")
    real = proxy.get("data") not in (None, "-", "synthetic") and proxy.get("imgsz") == 128  # the default's size
    return (f"data {data}, {epochs} epoch{'' if epochs == 1 else 's'}, imgsz {proxy.get('imgsz', '-')}"
            + (" (the default, chosen on synthetic objects, not real images)" if real else "")
            + f", batch {proxy.get('batch', '-')}, seed {proxy.get('seed', '-')}")


