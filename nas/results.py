"""Reading a finished (or running) study: the Pareto front as plain rows, picks, JSON and the front plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.budget import Budget, format_params
from nas.errors import NasError
from nas.pareto import closest_to_budget, count_outcomes, is_feasible, pareto_front
from nas.record import Outcome, read, read_study

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
    params: int | None
    choices: str
    feasible: bool
    over_budget: bool
    baseline: bool
    d_fitness: float | None = None  # against the baseline trial
    d_gflops: float | None = None
    excess: dict[str, float] | None = None  # constraint values > 0 (infeasible trials)
    fail_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["mAP50-95"] = doc.pop("mAP50_95")
        return doc


def short_choices(choices: Any, points: list[str] | None = None) -> str:
    """`{point: "none" | "SGE(groups=8)"}` -> 'p4: SGE(groups=8), p5: FLA(...)'; '-' when none inserted."""
    if not isinstance(choices, dict) or not choices:
        return "-"
    order = [p for p in (points or []) if p in choices] + [p for p in choices if p not in (points or [])]
    parts = [f"{p}: {choices[p]}" for p in order if str(choices[p]).lower() not in ("none", "", "-")]
    return ", ".join(parts) if parts else "-"


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
    row = TrialRow(
        trial=t.number,
        state=r.state,
        fitness=fitness,
        mAP50=r.mAP50,
        mAP50_95=r.mAP50_95,
        gflops=gflops,
        params=r.params,
        choices=short_choices(r.choices, points),
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

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "budget": self.budget.to_attr(),
            "points": self.points,
            "trials": self.counts,
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "front": [r.to_json() for r in self.front],
            "closest_to_budget": [r.to_json() for r in self.closest],
        }


def front_report(study: optuna.Study, storage_label: str = "") -> FrontReport:
    """The feasible front with baseline deltas, or the candidates closest to the budget when it is empty."""
    trials = study.get_trials(deepcopy=False)
    points = read_study(study).points
    budget = study_budget(study)
    base = baseline_trial(study)
    front = [trial_row(t, base, points) for t in pareto_front(trials)]
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
    )


def fmt(value: float | None, spec: str = ".4f", signed: bool = False) -> str:
    """A number for a table cell; '-' for None."""
    if value is None:
        return "-"
    return format(value, ("+" if signed else "") + spec)


def fmt_params(value: int | None) -> str:
    return "-" if value is None else format_params(value)


def plot_front(study: optuna.Study, path: str | Path) -> Path:
    """Save a PNG of every trial (feasible, over budget, failed), the front, the baseline and the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    path = Path(path)
    trials = study.get_trials(deepcopy=False)
    front = pareto_front(trials)
    budget = study_budget(study)
    base = baseline_trial(study)

    feasible = [t for t in trials if is_feasible(t)]
    over = [t for t in trials if t.state == TrialState.COMPLETE and not is_feasible(t)]
    failed = [t for t in trials if t.state == TrialState.FAIL and read(t).gflops is not None]

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ys_all = [_fitness(t) for t in feasible + over if _fitness(t) is not None]
    bottom = min(ys_all, default=0.0)
    top = max(ys_all, default=1.0)
    pad = max((top - bottom) * 0.08, 1e-3)
    if feasible:
        ax.scatter(
            [_gflops(t) for t in feasible],
            [_fitness(t) for t in feasible],
            s=22,
            c="tab:blue",
            alpha=0.7,
            label=f"feasible ({len(feasible)})",
        )
    if over:
        ax.scatter(
            [_gflops(t) for t in over],
            [_fitness(t) for t in over],
            s=26,
            c="tab:red",
            marker="x",
            alpha=0.8,
            label=f"over budget ({len(over)})",
        )
    if failed:
        ax.scatter(
            [_gflops(t) for t in failed],
            [bottom - pad] * len(failed),
            s=26,
            c="0.5",
            marker="v",
            label=f"failed ({len(failed)}), at their GFLOPs",
        )
    if front:
        xs = [_gflops(t) for t in front]
        ys = [_fitness(t) for t in front]
        ax.step(xs, ys, where="post", c="tab:green", lw=1.6, label=f"Pareto front ({len(front)})")
        ax.scatter(xs, ys, s=40, facecolors="none", edgecolors="tab:green")
        for t, x, y in zip(front, xs, ys, strict=True):
            ax.annotate(str(t.number), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if base is not None and _gflops(base) is not None:
        ax.scatter(
            [_gflops(base)],
            [_fitness(base)],
            s=160,
            marker="*",
            c="gold",
            edgecolors="black",
            zorder=5,
            label=f"baseline (trial {base.number})",
        )
    if budget.gflops is not None:
        ax.axvline(budget.gflops, c="tab:red", ls="--", lw=1, label=f"budget {budget.gflops:g} GFLOPs")
    ax.set_xlabel("GFLOPs")
    ax.set_ylabel("fitness (0.1 mAP50 + 0.9 mAP50-95)")
    imgsz = read_study(study).imgsz
    where = f" at {imgsz[0]}x{imgsz[1]}" if imgsz else ""
    ax.set_title(f"study {study.study_name}: fitness vs GFLOPs{where}")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as e:
        raise NasError(f"cannot write the plot {path}: {e.strerror or e}; choose a writable path") from None
    finally:
        plt.close(fig)
    return path


def _fitness(t: FrozenTrial) -> float | None:
    return read(t).objective_fitness


def _gflops(t: FrozenTrial) -> float | None:
    return read(t).objective_gflops
