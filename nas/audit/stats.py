"""Rank statistics for proxy fidelity: Kendall tau-b, Spearman rho, a seeded bootstrap, seed noise.

Pure functions on plain lists, so the audit and the fidelity bench compute the same numbers; tau-b and
rho follow scipy.stats (ties handled; nan when a side is constant), written here to stay cheap inside a
bootstrap of a thousand resamples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

NAN = float("nan")


def _paired(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"rank correlation of sequences of different lengths ({a.size} vs {b.size})")
    return a, b


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall tau-b of two equally long sequences (nan with fewer than 2 points or a constant side)."""
    a, b = _paired(x, y)
    if a.size < 2:
        return NAN
    i, j = np.triu_indices(a.size, k=1)
    sx, sy = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    concordance = float(np.sum(sx * sy))
    nx, ny = float(np.count_nonzero(sx)), float(np.count_nonzero(sy))  # pairs not tied in x, in y
    if nx == 0 or ny == 0:
        return NAN
    return concordance / math.sqrt(nx * ny)


def ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    a = np.asarray(x, dtype=float)
    order = np.argsort(a, kind="mergesort")
    out = np.empty(a.size)
    sorted_a = a[order]
    start = 0
    for k in range(1, a.size + 1):
        if k == a.size or sorted_a[k] != sorted_a[start]:
            out[order[start:k]] = (start + k + 1) / 2.0
            start = k
    return out


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rho: the Pearson correlation of average ranks (nan when a side is constant)."""
    a, b = _paired(x, y)
    if a.size < 2:
        return NAN
    ra, rb = ranks(a) - (a.size + 1) / 2.0, ranks(b) - (b.size + 1) / 2.0
    den = math.sqrt(float(np.sum(ra * ra)) * float(np.sum(rb * rb)))
    return NAN if den == 0 else float(np.sum(ra * rb)) / den


Statistic = Callable[[Sequence[float], Sequence[float]], float]


def bootstrap_interval(x: Sequence[float], y: Sequence[float], stat: Statistic,
                       n: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of stat(x, y) over resampled candidates (pairs drawn with replacement).

    Deterministic for a seed; resamples where the statistic is undefined (all one candidate) are skipped.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, a.size, a.size)
        v = stat(a[idx], b[idx])
        if math.isfinite(v):
            values.append(v)
    if not values:
        return NAN, NAN
    lo, hi = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


@dataclass
class Correlation:
    """Rank agreement of one score with the reference over n candidates, with bootstrap intervals."""

    n: int
    tau: float
    tau_low: float
    tau_high: float
    rho: float
    rho_low: float
    rho_high: float

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def correlate(score: Sequence[float], reference: Sequence[float], n_boot: int = 1000, seed: int = 0) -> Correlation:
    """Kendall tau-b and Spearman rho of score against reference, each with a 95% bootstrap interval."""
    tl, th = bootstrap_interval(score, reference, kendall_tau, n_boot, seed=seed)
    rl, rh = bootstrap_interval(score, reference, spearman_rho, n_boot, seed=seed)
    return Correlation(len(score), kendall_tau(score, reference), tl, th, spearman_rho(score, reference), rl, rh)


def loss_sum(losses: Sequence[float]) -> float:
    """Sum of per-epoch training losses (SoTL, Ru et al. 2021); lower is better."""
    return float(sum(losses))


def loss_ema(losses: Sequence[float], decay: float = 0.9) -> float:
    """Exponential moving average of per-epoch training losses, recent epochs weighted most (SoTL-EMA)."""
    value = NAN
    for v in losses:
        value = float(v) if not math.isfinite(value) else decay * value + (1 - decay) * float(v)
    return value


def seed_sd(values: Sequence[float]) -> float:
    """Sample standard deviation of one candidate's scores over seeds (nan with fewer than two)."""
    return float(np.std(values, ddof=1)) if len(values) >= 2 else NAN


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """Pooled within-candidate standard deviation over seeds: sqrt(sum of squared deviations / dof)."""
    ss, dof = 0.0, 0
    for g in groups:
        if len(g) >= 2:
            a = np.asarray(g, dtype=float)
            ss += float(np.sum((a - a.mean()) ** 2))
            dof += a.size - 1
    return math.sqrt(ss / dof) if dof else NAN


def mean_pairwise_tau(columns: Sequence[Sequence[float]]) -> float:
    """Mean Kendall tau over every pair of columns (seed against seed), nan with fewer than two columns."""
    taus = [kendall_tau(columns[i], columns[j]) for i in range(len(columns)) for j in range(i + 1, len(columns))]
    taus = [t for t in taus if math.isfinite(t)]
    return float(np.mean(taus)) if taus else NAN
