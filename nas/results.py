"""Reading a finished (or running) study: the Pareto front as plain rows, picks, JSON and the front plot."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.budget import Budget, format_params
from nas.errors import NasError
from nas.study import is_feasible, pareto_front

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

PICKS = ("fitness", "knee")


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


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def trial_fitness(t: FrozenTrial) -> float | None:
    """The trial's fitness: its first objective value, else the `fitness` user attr."""
    if t.values:
        return _num(t.values[0])
    return _num(t.user_attrs.get("fitness"))


def trial_gflops(t: FrozenTrial) -> float | None:
    """The trial's GFLOPs: its second objective value, else the `gflops` user attr (failed trials)."""
    if t.values and len(t.values) > 1:
        return _num(t.values[1])
    return _num(t.user_attrs.get("gflops"))


def short_choices(choices: Any, points: list[str] | None = None) -> str:
    """`{point: "none" | "SGE(groups=8)"}` -> 'p4: SGE(groups=8), p5: FLA(...)'; '-' when none inserted."""
    if not isinstance(choices, dict) or not choices:
        return "-"
    order = [p for p in (points or []) if p in choices] + [p for p in choices if p not in (points or [])]
    parts = [f"{p}: {choices[p]}" for p in order if str(choices[p]).lower() not in ("none", "", "-")]
    return ", ".join(parts) if parts else "-"


def baseline_trial(study: optuna.Study) -> FrozenTrial | None:
    """The completed trial marked `baseline=True` (the unmodified base model), if any."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("baseline") is True:
            return t
    return None


def study_budget(study: optuna.Study) -> Budget:
    """The budget recorded in the study's user attrs."""
    return Budget.from_attr(study.user_attrs.get("budget"))


def trial_row(
    t: FrozenTrial, baseline: FrozenTrial | None = None, points: list[str] | None = None
) -> TrialRow:
    """A FrozenTrial -> TrialRow (deltas against `baseline` when given)."""
    attrs = t.user_attrs
    fitness, gflops = trial_fitness(t), trial_gflops(t)
    params = attrs.get("params")
    row = TrialRow(
        trial=t.number,
        state=t.state.name,
        fitness=fitness,
        mAP50=_num(attrs.get("mAP50")),
        mAP50_95=_num(attrs.get("mAP50-95")),
        gflops=gflops,
        params=int(params) if isinstance(params, (int, float)) and not isinstance(params, bool) else None,
        choices=short_choices(attrs.get("choices"), points),
        feasible=is_feasible(t),
        over_budget=bool(attrs.get("over_budget")) or any(float(v) > 0 for v in t.constraints.values()),
        baseline=attrs.get("baseline") is True,
        fail_reason=attrs.get("fail_reason"),
    )
    excess = {k: float(v) for k, v in t.constraints.items() if float(v) > 0}
    row.excess = excess or None
    if baseline is not None and fitness is not None and gflops is not None:
        bf, bg = trial_fitness(baseline), trial_gflops(baseline)
        row.d_fitness = None if bf is None else fitness - bf
        row.d_gflops = None if bg is None else gflops - bg
    return row


def closest_to_budget(study: optuna.Study, budget: Budget, k: int = 5) -> list[FrozenTrial]:
    """Up to k completed-but-infeasible trials with the smallest relative budget excess."""
    from optuna.trial import TrialState

    def excess(t: FrozenTrial) -> float:
        worst = 0.0
        for key, value in t.constraints.items():
            limit = {"gflops": budget.gflops, "params": budget.params}.get(key) or 1.0
            worst = max(worst, float(value) / float(limit))
        return worst

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if not is_feasible(t)]
    done.sort(key=lambda t: (excess(t), trial_gflops(t) or math.inf, t.number))
    return done[:k]


def knee(front: list[FrozenTrial]) -> FrozenTrial:
    """The front point farthest above the line joining its extremes in normalised (GFLOPs, fitness).

    With fewer than three points, or no point above that line, the highest-fitness point.
    """
    if not front:
        raise ValueError("empty front")
    best = max(front, key=lambda t: (trial_fitness(t), -trial_gflops(t), -t.number))
    if len(front) < 3:
        return best
    xs = [trial_gflops(t) for t in front]
    ys = [trial_fitness(t) for t in front]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0 or y1 == y0:
        return best
    pts = [((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y in zip(xs, ys, strict=True)]
    (ax, ay), (bx, by) = pts[0], pts[-1]  # the front is sorted by GFLOPs: its two extremes
    norm = math.hypot(bx - ax, by - ay)
    # signed distance, positive above the line (more fitness for the GFLOPs than the straight trade-off)
    dist = [((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / norm for px, py in pts]
    i = max(range(len(front)), key=lambda j: (dist[j], -j))
    return front[i] if dist[i] > 1e-12 else best


def describe_trial_problem(study: optuna.Study, number: int) -> FrozenTrial:
    """The trial with this number if it can be exported; NasError saying why not otherwise."""
    trials = study.get_trials(deepcopy=False)
    found = [t for t in trials if t.number == number]
    name = study.study_name
    if not found:
        last = max((t.number for t in trials), default=None)
        span = f"trials 0..{last}" if last is not None else "no trials"
        raise NasError(
            f"study {name!r} has no trial {number} ({span}); list them with: nas pareto --study {name}"
        )
    t = found[0]
    from optuna.trial import TrialState

    if t.state != TrialState.COMPLETE:
        reason = t.user_attrs.get("fail_reason")
        extra = f": {reason}" if reason else ""
        raise NasError(
            f"trial {number} of study {name!r} is {t.state.name}{extra}; "
            "choose a completed trial from `nas pareto`"
        )
    if not is_feasible(t):
        over = (
            ", ".join(f"{k} +{v:g}" for k, v in t.constraints.items() if float(v) > 0) or "marked over budget"
        )
        raise NasError(
            f"trial {number} of study {name!r} is over the budget ({over}); "
            "choose a feasible trial from `nas pareto`"
        )
    return t


def select_trial(
    study: optuna.Study, *, trial: int | None = None, max_gflops: float | None = None, pick: str | None = None
) -> FrozenTrial:
    """The trial to export: `trial` number, else best fitness under `max_gflops`, else `pick` on the front."""
    given = [x for x in (trial is not None, max_gflops is not None, pick is not None) if x]
    if len(given) > 1:
        raise NasError("give only one of --trial, --max-gflops and --pick")
    if trial is not None:
        return describe_trial_problem(study, trial)
    front = pareto_front(study)
    name = study.study_name
    if not front:
        n = len(study.get_trials(deepcopy=False))
        raise NasError(
            f"study {name!r} has no feasible completed trial ({n} trials); "
            "run more trials with `nas search` or raise the budget"
        )
    if max_gflops is not None:
        under = [t for t in front if trial_gflops(t) <= max_gflops]
        if not under:
            least = min(trial_gflops(t) for t in front)
            raise NasError(
                f"no feasible trial of study {name!r} has <= {max_gflops:g} GFLOPs "
                f"(the lightest has {least:.4g}); "
                "raise --max-gflops"
            )
        return max(under, key=lambda t: (trial_fitness(t), -trial_gflops(t), -t.number))
    pick = pick or "fitness"
    if pick == "fitness":
        return max(front, key=lambda t: (trial_fitness(t), -trial_gflops(t), -t.number))
    if pick == "knee":
        return knee(front)
    raise NasError(f"--pick {pick!r} is not one of: {', '.join(PICKS)}")


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
    points = list(study.user_attrs.get("points") or [])
    budget = study_budget(study)
    base = baseline_trial(study)
    counts: dict[str, int] = {"total": len(trials), "feasible": sum(is_feasible(t) for t in trials)}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    front = [trial_row(t, base, points) for t in pareto_front(trials)]
    closest = [] if front else [trial_row(t, base, points) for t in closest_to_budget(study, budget)]
    return FrontReport(
        study=study.study_name,
        storage=storage_label,
        budget=budget,
        points=points,
        counts=counts,
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
    failed = [t for t in trials if t.state == TrialState.FAIL and trial_gflops(t) is not None]

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ys_all = [trial_fitness(t) for t in feasible + over if trial_fitness(t) is not None]
    bottom = min(ys_all, default=0.0)
    top = max(ys_all, default=1.0)
    pad = max((top - bottom) * 0.08, 1e-3)
    if feasible:
        ax.scatter(
            [trial_gflops(t) for t in feasible],
            [trial_fitness(t) for t in feasible],
            s=22,
            c="tab:blue",
            alpha=0.7,
            label=f"feasible ({len(feasible)})",
        )
    if over:
        ax.scatter(
            [trial_gflops(t) for t in over],
            [trial_fitness(t) for t in over],
            s=26,
            c="tab:red",
            marker="x",
            alpha=0.8,
            label=f"over budget ({len(over)})",
        )
    if failed:
        ax.scatter(
            [trial_gflops(t) for t in failed],
            [bottom - pad] * len(failed),
            s=26,
            c="0.5",
            marker="v",
            label=f"failed ({len(failed)}), at their GFLOPs",
        )
    if front:
        xs = [trial_gflops(t) for t in front]
        ys = [trial_fitness(t) for t in front]
        ax.step(xs, ys, where="post", c="tab:green", lw=1.6, label=f"Pareto front ({len(front)})")
        ax.scatter(xs, ys, s=40, facecolors="none", edgecolors="tab:green")
        for t, x, y in zip(front, xs, ys, strict=True):
            ax.annotate(str(t.number), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if base is not None and trial_gflops(base) is not None:
        ax.scatter(
            [trial_gflops(base)],
            [trial_fitness(base)],
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
    imgsz = study.user_attrs.get("imgsz")
    where = f" at {imgsz[0]}x{imgsz[1]}" if isinstance(imgsz, list) and len(imgsz) == 2 else ""
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
