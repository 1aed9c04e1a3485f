"""Asynchronous multi-objective successive halving (MO-ASHA) for the proxy training runs.

Optuna cannot prune two-objective studies, so the decision is ours. Rungs sit at geometric fractions of the
proxy (epochs / eta^k). When a candidate reaches a rung it goes on only if its (fitness at the rung, GFLOPs)
ranks in the top ceil(n / eta) of the n candidates that reached that rung so far, by non-dominated sorting
with crowding distance inside the last front (NSGA-II ranking, one of MO-ASHA's). The records live in the
study as the trial record's `rungs` ({"3": 0.1234}, nas.record), so the decision is asynchronous, multi-worker and
resume safe. References: Schmucker et al. 2021 (MO-ASHA); Li et al. 2020 (ASHA); Deb et al. 2002 (NSGA-II).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from optuna.trial import TrialState

from nas.errors import NasError
from nas.front.pareto import dominates
from nas.record import audit_summary, read, write

Score = tuple[Hashable, float, float]  # (key, fitness at the rung, GFLOPs)


def rung_epochs(epochs: int, eta: int = 3, min_epoch: int = 1) -> list[int]:
    """Rung epochs of a proxy of `epochs` epochs: round(epochs / eta^k) for k >= 1, kept when
    min_epoch <= rung < epochs; ascending and unique. When the ranking forms later than every geometric rung,
    the single rung at min_epoch (if it is before the last epoch); empty when no rung fits (nothing is stopped)."""
    for name, value, least in (("epochs", epochs, 1), ("eta (the reduction factor)", eta, 2),
                               ("the first rung epoch", min_epoch, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise NasError(f"{name} must be an integer of at least {least}, got {value!r}")
    rungs: set[int] = set()
    k = 1
    while epochs / eta**k >= 0.5:  # below that every further rung rounds to 0
        rung = math.floor(epochs / eta**k + 0.5)  # half up, not Python's round-half-even
        if min_epoch <= rung < epochs:
            rungs.add(rung)
        k += 1
    if not rungs and min_epoch < epochs:
        rungs.add(min_epoch)
    return sorted(rungs)


# Where the ranking formed on the built-in data, by proxy length: bench/bench_fidelity.py measured tau per proxy
# epoch against a 4x longer reference over 15 candidates (docs/FIDELITY.md), and by the audit's rule (tau stays
# within 0.1 of its final value from there on) it formed at epoch 6 of the 8-epoch proxy and only at the last
# epoch of the 4-epoch default. Replaying the rungs on the 8-epoch runs, a single rung at epoch 6 keeps 93-98%
# of the full proxy's Pareto front, a rung at epoch 3 69-95%. Other lengths: 3/4 of the proxy.
FORMED_ON_BUILTIN_DATA = {4: 4, 8: 6}
FORMED_FRACTION = 0.75


def first_rung(epochs: int, formed_epoch: int | None = None) -> int:
    """The earliest epoch a rung may sit at: where the audit's per-epoch tau says the ranking has formed, or,
    without an audit, where it formed on the built-in data (FORMED_ON_BUILTIN_DATA, else FORMED_FRACTION of
    the proxy). A first rung at the last epoch means no rung: nothing is stopped early."""
    if formed_epoch is not None:
        return max(1, int(formed_epoch))
    if epochs in FORMED_ON_BUILTIN_DATA:
        return FORMED_ON_BUILTIN_DATA[epochs]
    return max(1, math.floor(FORMED_FRACTION * epochs + 0.5))


def study_rungs(study: Any, epochs: int, eta: int = 3) -> tuple[list[int], str]:
    """(rung epochs, where the first one comes from) for a search on `study`: its last finished audit when it
    audited this proxy length, else the default of `first_rung`."""
    audit = audit_summary(study)
    formed = getattr(audit, "formed_epoch", None)
    if audit is not None and formed is not None and audit.proxy_epochs == epochs:
        return rung_epochs(epochs, eta, first_rung(epochs, formed)), f"audit: ranking formed at epoch {formed}"
    return (rung_epochs(epochs, eta, first_rung(epochs)),
            "no audit: where the ranking formed on the built-in data (docs/FIDELITY.md)")


def fronts(scores: Sequence[Score]) -> list[list[int]]:
    """Indices of scores by non-dominated front: front 0 is the Pareto front, front 1 the front once 0 is
    removed, ... (Deb's fast non-dominated sort, O(n^2): a long search puts hundreds of trials on a rung)."""
    n = len(scores)
    points = [(s[1], s[2]) for s in scores]
    beats: list[list[int]] = [[] for _ in range(n)]  # beats[i]: the scores i dominates
    beaten = [0] * n  # how many scores dominate i
    for i in range(n):
        for j in range(n):
            if i != j and dominates(points[i], points[j]):
                beats[i].append(j)
                beaten[j] += 1
    out: list[list[int]] = []
    front = [i for i in range(n) if beaten[i] == 0]
    while front:
        out.append(front)
        nxt = []
        for i in front:
            for j in beats[i]:
                beaten[j] -= 1
                if beaten[j] == 0:
                    nxt.append(j)
        front = sorted(nxt)
    return out


def crowding(scores: Sequence[Score], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II crowding distance of each index of one front, normalised by the objectives' range over all
    scores; identical points share one value, the front's two ends get infinity."""
    points = sorted({(scores[i][1], scores[i][2]) for i in front})  # distinct points, fitness ascending
    dist = {p: 0.0 for p in points}
    for obj in (0, 1):
        span = max(s[obj + 1] for s in scores) - min(s[obj + 1] for s in scores)
        order = sorted(points, key=lambda p: p[obj])
        dist[order[0]] = dist[order[-1]] = math.inf
        for j in range(1, len(order) - 1):
            if span > 0:
                dist[order[j]] += (order[j + 1][obj] - order[j - 1][obj]) / span
    return {i: dist[(scores[i][1], scores[i][2])] for i in front}


def rank_keys(scores: Sequence[Score]) -> list[tuple[int, float, float, float]]:
    """A sort key per score, smaller is better: (front, -crowding distance, -fitness, GFLOPs).

    Crowding distance breaks ties inside a front towards its ends and sparse parts, so the survivors spread
    over the whole accuracy/GFLOPs trade-off rather than crowd one end (hypervolume contribution would need a
    reference point, which an asynchronous rung does not have). Equal crowding goes to the higher fitness:
    GFLOPs are already final, fitness is what the rung measures. Only identical points share a key.
    """
    keys: list[tuple[int, float, float, float]] = [(0, 0.0, 0.0, 0.0)] * len(scores)
    for r, front in enumerate(fronts(scores)):
        for i, d in crowding(scores, front).items():
            keys[i] = (r, -d, -scores[i][1], scores[i][2])
    return keys


def promote(scores: Sequence[Score], me: Hashable, eta: int = 3) -> bool:
    """Does candidate `me` go on from this rung? `scores` are all candidates that reached it, `me` included.

    Yes when fewer than eta reached it (too little evidence), or when fewer than ceil(n / eta) candidates rank
    strictly ahead of it: identical scores tie, and a tie at the boundary goes on (a stop cannot be undone).
    """
    keys = rank_keys(scores)
    mine = [keys[i] for i, s in enumerate(scores) if s[0] == me]
    if not mine:
        raise ValueError(f"candidate {me!r} is not among the scores at this rung")
    n = len(scores)
    if n < eta:
        return True
    return sum(k < mine[0] for k in keys) < math.ceil(n / eta)


def rung_scores(study: Any, epoch: int, exclude: int | None = None) -> list[Score]:
    """(trial number, fitness at `epoch`, GFLOPs) of every COMPLETE or RUNNING trial of the study that
    recorded that rung (running ones too: the decision is asynchronous), except trial `exclude`.
    GFLOPs come from the `gflops` user attr the search sets on every candidate before training it."""
    out: list[Score] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        r = read(t)
        fitness = r.rungs.get(str(epoch))
        if t.number == exclude or fitness is None or r.gflops is None:
            continue
        out.append((t.number, float(fitness), r.gflops))
    return out


class SuccessiveHalving:
    """The search's stop rule for one candidate: `should_stop(record)` after every epoch.

    At a rung epoch it writes the candidate's fitness to its trial's `rungs` attr, reads the other trials'
    records at that rung from the study and stops the candidate when `promote` says no; then `.reason`
    says why and `.stopped` holds {epoch, fitness, compared, kept, reason} for the trial record.
    """

    def __init__(self, trial: Any, gflops: float, epochs: int, eta: int = 3, min_epoch: int = 1,
                 rungs: list[int] | None = None):
        self.trial = trial
        self.study = trial.study
        self.gflops = float(gflops)
        self.eta = eta
        # the epochs that need an evaluation (given, or placed from epochs, eta and min_epoch)
        self.epochs = list(rungs) if rungs is not None else rung_epochs(epochs, eta, min_epoch)
        self.records: dict[str, float] = {}
        self.reason = ""
        self.stopped: dict[str, Any] | None = None

    def should_stop(self, record: dict) -> bool:
        epoch = int(record["epoch"])
        if epoch not in self.epochs:
            return False
        if record.get("fitness") is None:
            raise ValueError(f"epoch {epoch} is a rung but its record has no fitness: evaluate at {self.epochs}")
        fitness = round(float(record["fitness"]), 6)
        self.records[str(epoch)] = fitness
        write(self.trial, rungs=dict(self.records))
        me = self.trial.number
        scores = [*rung_scores(self.study, epoch, exclude=me), (me, fitness, self.gflops)]
        if promote(scores, me, self.eta):
            return False
        kept = math.ceil(len(scores) / self.eta)
        self.reason = (f"rung at epoch {epoch}: fitness {fitness:.4f} at {self.gflops:.3g} GFLOPs is not in the "
                       f"top {kept} of {len(scores)} candidates at this rung by Pareto rank")
        self.stopped = {"epoch": epoch, "fitness": fitness, "compared": len(scores), "kept": kept,
                        "reason": self.reason}
        return True


__all__ = ["SuccessiveHalving", "crowding", "first_rung", "fronts", "promote", "rank_keys",
           "rung_epochs", "rung_scores", "study_rungs"]
