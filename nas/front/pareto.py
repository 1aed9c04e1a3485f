"""The accuracy/cost front: feasibility, dominance, the front, its knee, the picks export-best offers, and the
outcome counts every report shows. Objectives: maximise fitness, minimise the cost, which is the study's second
objective value (GFLOPs, or the predicted latency in an `--objective latency` study); `axis` reads the front
along either recorded cost instead."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from nas.errors import NasError
from nas.record import Outcome, TrialRecord, read

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from nas.budget import Budget

PICKS = ("fitness", "knee")
AXES = ("gflops", "latency")  # the recorded costs a front can be read along


def cost_value(r: TrialRecord, axis: str | None = None) -> float | None:
    """A trial's cost along `axis`: None -> the study's objective value, "gflops", or "latency" (predicted ms)."""
    if axis is None:
        return r.cost
    if axis == "gflops":
        return r.objective_gflops
    if axis == "latency":
        return r.latency_ms
    raise ValueError(f"unknown cost axis {axis!r} (one of: {', '.join(AXES)})")


def _trials(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    if hasattr(study_or_trials, "get_trials"):
        return study_or_trials.get_trials(deepcopy=False)
    return list(study_or_trials)


def is_feasible(trial: FrozenTrial | TrialRecord) -> bool:
    """COMPLETE with two values, every constraint <= 0 and not marked over budget."""
    r = trial if isinstance(trial, TrialRecord) else read(trial)
    if not r.complete or r.values is None or len(r.values) < 2 or r.over_budget:
        return False
    return all(float(v) <= 0.0 for v in r.constraints.values())


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when (fitness, cost) a dominates b: fitness >= and cost <=, strictly better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_front(study_or_trials: optuna.Study | Iterable[FrozenTrial], axis: str | None = None) -> list[FrozenTrial]:
    """Feasible complete trials not dominated in (fitness max, cost min), ordered by cost then trial. The cost is
    the study's objective value, or the recorded cost along `axis` (trials without one are left out).

    Trials with equal values are all kept (none dominates the other), except reused twins: a trial that
    reused the score of a trial on the front is the same model, listed once under the trial that trained it
    (`twins` names them).
    """
    point: dict[int, tuple[float, float]] = {}
    for t in _trials(study_or_trials):
        r = read(t)
        cost = cost_value(r, axis)
        if is_feasible(r) and cost is not None:
            point[t.number] = (float(t.values[0]), cost)
    feasible = [t for t in _trials(study_or_trials) if t.number in point]
    # Sorting by cost asc, fitness desc makes one pass enough: a point is on the front when its
    # fitness beats every point with lower cost (or equals the best at equal cost and fitness).
    feasible.sort(key=lambda t: (point[t.number][1], -point[t.number][0], t.number))
    front: list[FrozenTrial] = []
    for t in feasible:
        if not any(dominates(point[f.number], point[t.number]) for f in front):
            front.append(t)
    on_front = {t.number for t in front}
    return [t for t in front if read(t).reused_from not in on_front]


def twins(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> dict[int, list[int]]:
    """Trial number -> the later trials that reused its score (the same rendered model, not trained again)."""
    out: dict[int, list[int]] = {}
    for t in _trials(study_or_trials):
        source = read(t).reused_from
        if source is not None and is_feasible(t):
            out.setdefault(source, []).append(t.number)
    return {k: sorted(v) for k, v in out.items()}


def best_key(t: FrozenTrial) -> tuple[float, float, int]:
    """Sort key of 'best': highest fitness, then fewest GFLOPs, then the earliest trial (use with max)."""
    r = read(t)
    fitness, gflops = r.objective_fitness, r.objective_gflops
    return (-math.inf if fitness is None else fitness, -(math.inf if gflops is None else gflops), -t.number)


def best(trials: Iterable[FrozenTrial]) -> FrozenTrial:
    """The highest-fitness trial (fewer GFLOPs, then the earlier trial, break ties)."""
    return max(trials, key=best_key)


def knee(front: list[FrozenTrial]) -> FrozenTrial:
    """The front point farthest above the line joining its extremes in normalised (cost, fitness); the cost
    is the study's objective (GFLOPs or latency).

    With fewer than three points, or no point above that line, the highest-fitness point.
    """
    if not front:
        raise ValueError("empty front")
    top = best(front)
    if len(front) < 3:
        return top
    records = [read(t) for t in front]
    xs = [r.cost if r.cost is not None else r.objective_gflops for r in records]  # the front's cost axis
    ys = [r.objective_fitness for r in records]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0 or y1 == y0:
        return top
    pts = [((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y in zip(xs, ys, strict=True)]
    (ax, ay), (bx, by) = pts[0], pts[-1]  # the front is sorted by GFLOPs: its two extremes
    norm = math.hypot(bx - ax, by - ay)
    # signed distance, positive above the line (more fitness for the GFLOPs than the straight trade-off)
    dist = [((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / norm for px, py in pts]
    i = max(range(len(front)), key=lambda j: (dist[j], -j))
    return front[i] if dist[i] > 1e-12 else top


def _fitness_of(item: FrozenTrial | TrialRecord) -> tuple[int, float | None]:
    r = item if isinstance(item, TrialRecord) else read(item)
    return r.number, r.objective_fitness


def ties(front: Iterable[FrozenTrial | TrialRecord], noise: float | None) -> dict[int, list[int]] | None:
    """Front trial -> the front members scoring better by at most `noise` (the audit's 2 x seed sd).

    Such a pair is a tie: the measured noise cannot tell them apart, so the cheaper one is as good a
    choice. None when the noise is unknown (no audit); every trial maps to a (maybe empty) list otherwise.
    """
    if noise is None or not math.isfinite(noise):
        return None
    scores = [_fitness_of(t) for t in front]
    return {n: [m for m, g in scores if m != n and f is not None and g is not None and 0 <= g - f <= noise
                and (g > f or m < n)]
            for n, f in scores}


def tied_with(front: Iterable[FrozenTrial | TrialRecord], number: int, noise: float | None) -> list[int] | None:
    """The other front members whose fitness is within `noise` of trial `number`, either way; None if unknown."""
    table = ties(front, noise)
    if table is None:
        return None
    return sorted({*table.get(number, []), *(n for n, better in table.items() if number in better)})


def count_outcomes(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> dict[str, int]:
    """Trials per state (`complete`, `fail`, `running`, ...), per outcome, `feasible` and `total`.

    Outcome counts follow the search report: `failed` is every FAIL trial, `trained` every trained one
    (stopped early included, also counted in `stopped`), `rejected` and `reused` the complete ones.
    """
    trials = _trials(study_or_trials)
    counts = {"total": len(trials), "feasible": 0, **{o.value: 0 for o in Outcome}}
    for t in trials:
        r = read(t)
        counts[r.state.lower()] = counts.get(r.state.lower(), 0) + 1
        counts["feasible"] += is_feasible(t)
        if r.state == "FAIL":
            counts["failed"] += 1
        elif r.outcome in (Outcome.REJECTED, Outcome.REUSED):
            counts[r.outcome.value] += 1
        elif r.outcome is not None and r.outcome.scored:
            counts["trained"] += 1
            counts["stopped"] += r.outcome == Outcome.STOPPED
    return counts


def scored_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials that were trained (to the end or stopped early), not rejected or reused."""
    return [t for t in _trials(study) if read(t).scored]


def closest_to_budget(study: optuna.Study, budget: Budget, k: int = 5) -> list[FrozenTrial]:
    """Up to k completed-but-infeasible trials with the smallest relative budget excess."""

    def excess(t: FrozenTrial) -> float:
        worst = 0.0
        for key, value in read(t).constraints.items():  # named only (the dashboard's list is a copy)
            limit = {"gflops": budget.gflops, "params": budget.params, "latency_ms": budget.latency_ms}.get(key) or 1.0
            worst = max(worst, float(value) / float(limit))
        return worst

    done = [t for t in _trials(study) if read(t).complete and not is_feasible(t)]
    done.sort(key=lambda t: (excess(t), read(t).objective_gflops or math.inf, t.number))
    return done[:k]


def exportable_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """The trial with this number if it can be exported; NasError saying why not otherwise."""
    trials = study.get_trials(deepcopy=False)
    found = [t for t in trials if t.number == number]
    name = study.study_name
    if not found:
        last = max((t.number for t in trials), default=None)
        span = f"trials 0..{last}" if last is not None else "no trials"
        raise NasError(f"study {name!r} has no trial {number} ({span}); list them with: nas pareto --study {name}")
    t = found[0]
    r = read(t)
    if not r.complete:
        extra = f": {r.fail_reason}" if r.fail_reason else ""
        raise NasError(f"trial {number} of study {name!r} is {r.state}{extra}; "
                       "choose a completed trial from `nas pareto`")
    if not is_feasible(t):
        over = ", ".join(f"{k} +{v:g}" for k, v in r.excess.items()) or "marked over budget"
        raise NasError(f"trial {number} of study {name!r} is over the budget ({over}); "
                       "choose a feasible trial from `nas pareto`")
    return t


def select_trial(
    study: optuna.Study, *, trial: int | None = None, max_gflops: float | None = None, pick: str | None = None
) -> FrozenTrial:
    """The trial to export: `trial` number, else best fitness under `max_gflops`, else `pick` on the front."""
    given = [x for x in (trial is not None, max_gflops is not None, pick is not None) if x]
    if len(given) > 1:
        raise NasError("give only one of --trial, --max-gflops and --pick")
    if trial is not None:
        return exportable_trial(study, trial)
    front = pareto_front(study)
    name = study.study_name
    if not front:
        n = len(study.get_trials(deepcopy=False))
        raise NasError(f"study {name!r} has no feasible completed trial ({n} trials); "
                       "run more trials with `nas search` or raise the budget")
    if max_gflops is not None:
        under = [t for t in front if read(t).objective_gflops <= max_gflops]
        if not under:
            least = min(read(t).objective_gflops for t in front)
            raise NasError(f"no feasible trial of study {name!r} has <= {max_gflops:g} GFLOPs "
                           f"(the lightest has {least:.4g}); raise --max-gflops")
        return best(under)
    pick = pick or "fitness"
    if pick == "fitness":
        return best(front)
    if pick == "knee":
        return knee(front)
    raise NasError(f"--pick {pick!r} is not one of: {', '.join(PICKS)}")


__all__ = ["AXES", "PICKS", "best", "best_key", "closest_to_budget", "cost_value", "count_outcomes", "dominates",
           "exportable_trial", "is_feasible", "knee", "pareto_front", "scored_trials", "select_trial", "tied_with",
           "ties"]
