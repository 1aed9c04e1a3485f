"""Which models an audit trains: a spread of a study's scored trials, or models named by the user."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nas.audit.stats import ranks
from nas.errors import NasError
from nas.model import count, load_cfg
from nas.record import read, read_history, read_model_yaml

MIN_CANDIDATES = 3


@dataclass
class Candidate:
    """One model to audit, as plain data. `run0` is the study's own seed-0 proxy run, when complete."""

    key: str  # "trial12" or "model:yolov5n:<hash>"; stable across runs of the audit
    label: str  # what tables and plots show: "#12", "yolov5n"
    gflops: float
    params: int
    model_yaml: str
    trial: int | None = None
    baseline: bool = False
    fitness: float | None = None  # the study's score (None for --models)
    run0: dict | None = None  # {"fitness", "history", ...} of the study's trial, when not stopped early


def front_indices(points: list[tuple[float, float]]) -> set[int]:
    """Indices of the points (gflops, fitness) not dominated by another (less or equal cost, more fitness)."""
    out = set()
    for i, (g, f) in enumerate(points):
        dominated = any(g2 <= g and f2 >= f and (g2 < g or f2 > f) for j, (g2, f2) in enumerate(points) if j != i)
        if not dominated:
            out.add(i)
    return out


def spread(points: list[tuple[float, float]], k: int, required: list[int] | None = None) -> list[int]:
    """k indices spread over (gflops, fitness): the required ones, the extremes of each axis, then farthest-point.

    Farthest-point works in rank space: coordinates are ranks scaled to [0, 1] on each axis, so neither unit
    dominates; ties go to the lower index. When required holds more than k, they are themselves thinned the
    same way (first one kept).
    """
    n = len(points)
    if n <= k:
        return list(range(n))
    rg, rf = ranks([p[0] for p in points]), ranks([p[1] for p in points])
    xy = [((rg[i] - 1) / max(n - 1, 1), (rf[i] - 1) / max(n - 1, 1)) for i in range(n)]
    required = list(dict.fromkeys(required or []))

    def farthest(chosen: list[int], pool: list[int], want: int) -> list[int]:
        chosen = list(chosen)
        rest = [i for i in pool if i not in chosen]
        while len(chosen) < want and rest:
            best = rest[0] if not chosen else \
                max(rest, key=lambda i: (min(math.dist(xy[i], xy[c]) for c in chosen), -i))
            chosen.append(best)
            rest.remove(best)
        return chosen

    if len(required) > k:
        return sorted(farthest(required[:1], required, k))
    extremes = [min(range(n), key=lambda i: (xy[i][a] * sign, i)) for a in (0, 1) for sign in (1, -1)]
    start = list(dict.fromkeys(required + extremes))[:k]
    return sorted(farthest(start, list(range(n)), k))


def study_candidates(study, scored: list, store=None) -> tuple[list[Candidate], int]:
    """Every distinct scored trial of a study as a Candidate (one per model hash, lowest trial number), and how
    many scored trials were left out because their model YAML is not readable here (artifacts elsewhere)."""
    seen: dict[str, Candidate] = {}
    missing = 0
    records = {t.number: read(t) for t in scored}
    for t in sorted(scored, key=lambda t: (records[t.number].outcome != "trained", t.number)):
        r = records[t.number]
        if r.fitness is None:
            continue
        if r.model_hash in seen:
            continue
        text = read_model_yaml(study, t, store)
        if not text:
            missing += 1
            continue
        mhash = r.model_hash or hashlib.sha256(text.encode()).hexdigest()
        if mhash in seen:
            continue
        full = r.outcome == "trained" and not r.stopped_early
        history = read_history(study, t, store) if full else []
        # a search with rungs scores only at the rungs: without a fitness at every epoch (or without the
        # history at all, its artifact being elsewhere) the audit reruns the seed-0 proxy
        run0 = {"fitness": r.fitness, "history": history, "seed": r.seed, "wall_time": r.wall_time} \
            if full and history and all("fitness" in h for h in history) else None
        seen[mhash] = Candidate(key=f"trial{t.number}", label=f"#{t.number}", gflops=float(r.gflops or 0.0),
                                params=int(r.params or 0), model_yaml=text, trial=t.number, baseline=r.baseline,
                                fitness=r.fitness, run0=run0)
    return sorted(seen.values(), key=lambda c: c.trial), missing


def select_candidates(cands: list[Candidate], k: int) -> list[Candidate]:
    """K candidates spread over the fitness and GFLOPs range, the baseline and the front included."""
    points = [(c.gflops, c.fitness or 0.0) for c in cands]
    required = [i for i, c in enumerate(cands) if c.baseline] + sorted(front_indices(points))
    return [cands[i] for i in spread(points, k, required)]


def model_candidates(models: list[str], nc: int, imgsz: Any) -> list[Candidate]:
    """Candidates for `--models` (built-in names or model YAML paths); NasError for a model that fails."""
    out = []
    for name in models:
        cfg = load_cfg(name)
        cfg.pop("_source", None)
        cfg["nc"] = nc
        cost = count(cfg, imgsz)  # builds it on the meta device: a bad layer fails here
        text = yaml.safe_dump(cfg, sort_keys=False)
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        label = Path(name).stem if name.endswith((".yaml", ".yml")) else name
        out.append(Candidate(key=f"model:{label}:{digest}", label=label, gflops=float(cost.gflops),
                             params=int(cost.params), model_yaml=text))
    keys = [c.key for c in out]
    dupes = sorted({k.split(":")[1] for k in keys if keys.count(k) > 1})
    if dupes:
        raise NasError(f"--models names the same model twice ({', '.join(dupes)}); name each once")
    if len(out) < MIN_CANDIDATES:
        raise NasError(f"--models needs at least {MIN_CANDIDATES} models to rank, got {len(out)}")
    return out
