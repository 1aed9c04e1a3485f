"""The budget gate at table speed: accept or reject a candidate from the per-slot cost table (and, for a
latency budget, from the study's per-slot latency table, nas.latency).

Costs are additive over points, so the space's cost table predicts a candidate's params and FLOPs exactly
without building it. Rejections cost a table lookup; only candidates that pass are built and counted on the
meta device, and a count that disagrees with the table is a bug in nas that stops the search loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nas.budget import Budget
from nas.cost.table import predict_cost
from nas.latency.table import LatencyTable
from nas.latency.table import predict as predict_latency
from nas.model.count import count
from nas.space import Architecture, Space, render

REL_TOLERANCE = 1e-9  # FLOPs are sums of integers: table and count agree up to float rounding, params exactly


class CostMismatch(Exception):
    """The cost table and the meta-device count disagree: a bug in nas, not a user error (never a NasError)."""


@dataclass(frozen=True)
class GateResult:
    """A candidate's cost and the gate's verdict; `counted` says whether the meta-device count confirmed it.
    `cfg` is the rendered model YAML dict of a counted candidate (what the search trains), else None."""

    params: int
    gflops: float
    over_budget: bool
    counted: bool
    cfg: dict | None = field(default=None, compare=False, repr=False)
    latency_ms: float | None = None  # predicted by the study's latency table (None without one)


_DETECT_DELTA: dict[tuple[str, float, float, int], tuple[int, float]] = {}


def nc_delta(space: Space, gd: float, gw: float, nc: int | None) -> tuple[int, float]:
    """(params, FLOPs) that rendering with `nc` classes adds to the base's: Detect's output convs grow with nc.

    The cost table is counted with the base's own nc (80 for the built-in models unless the space fixes
    nc); the search renders with the data's. Counted once per (space, multiples, nc) and cached.
    """
    base_nc = int(space.base_cfg["nc"])
    if nc is None or int(nc) == base_nc:
        return 0, 0.0
    key = (space.hash, gd, gw, int(nc))
    if key not in _DETECT_DELTA:
        cfg = dict(space.base_cfg, depth_multiple=gd, width_multiple=gw)
        theirs = count(dict(cfg, nc=int(nc)), space.imgsz)
        ours = count(cfg, space.imgsz)
        _DETECT_DELTA[key] = (theirs.params - ours.params, theirs.flops - ours.flops)
    return _DETECT_DELTA[key]


def predict(space: Space, arch: Architecture, nc: int | None = None) -> tuple[int, float]:
    """(params, GFLOPs) of an architecture rendered with `nc` classes (None: the base's nc), from the table."""
    params, flops = predict_cost(space, arch)
    d_params, d_flops = nc_delta(space, arch.depth_multiple, arch.width_multiple, nc)
    return params + d_params, (flops + d_flops) / 1e9


def gate(space: Space, arch: Architecture, budget: Budget, cfg: dict | None = None,
         nc: int | None = None, table: LatencyTable | None = None) -> GateResult:
    """Accept or reject `arch` against `budget` from the cost table; count only candidates that pass.

    `cfg` is the rendered model YAML dict when the caller already has it (rendered here otherwise, only for
    a candidate that passes). Classes: `nc`, else cfg's nc, else the base's. Raises CostMismatch when the
    count disagrees with the table. With a latency `table` the candidate's latency is the table's prediction
    (base + its slots), and a latency budget gates on it; a latency budget without a table is a ValueError.
    """
    if nc is None and cfg is not None:
        nc = cfg.get("nc")
    params, gflops = predict(space, arch, nc)
    latency = None if table is None else predict_latency(table, arch)
    if budget.exceeded(gflops, params, latency):
        return GateResult(params, gflops, over_budget=True, counted=False, latency_ms=latency)
    if cfg is None:
        cfg = render(space, arch)
        if nc is not None:
            cfg["nc"] = int(nc)
    real = count(cfg, space.imgsz)
    check(arch, params, gflops, real.params, real.gflops)
    return GateResult(real.params, real.gflops, over_budget=budget.exceeded(real.gflops, real.params, latency),
                      counted=True, cfg=cfg, latency_ms=latency)


def check(arch: Architecture, params: int, gflops: float, real_params: int, real_gflops: float) -> None:
    """Raise CostMismatch when the table's (params, GFLOPs) and the count's differ beyond float rounding."""
    if params == real_params and abs(gflops - real_gflops) <= REL_TOLERANCE * max(abs(real_gflops), 1e-9):
        return
    short = arch.short()
    raise CostMismatch(f"cost table predicts {params} params / {gflops:.9g} GFLOPs but the meta-device count "
                       f"gives {real_params} params / {real_gflops:.9g} GFLOPs for {short}: a bug in nas's cost "
                       f"table (please report it with the space file); the search stops so that no budget "
                       f"decision rests on a wrong cost")


__all__ = ["REL_TOLERANCE", "CostMismatch", "GateResult", "check", "gate", "nc_delta", "predict"]
