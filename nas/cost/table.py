"""What every architecture of a space costs, from a table: one count of the base per multiples, one per choice.

Costs are additive over points (a block never changes the shapes around it), so the base's cost plus each
point's delta is the exact cost of an architecture, without building it (the gate checks the sum against a
count of every candidate it lets through).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

import blocks
from nas.errors import NasError
from nas.model import at_multiples, module_flops, source_index
from nas.space import Architecture, Space, block_configs


@dataclass
class SlotCost:
    """What one block choice (with one hyperparameter setting) adds at one point."""

    point: str
    block: str
    hyperparameters: dict[str, Any]
    params: int
    flops: float
    shape: tuple[int, int, int]  # C, H, W of the feature map at the point


def slot_costs(space: Space, gd: float, gw: float) -> list[SlotCost]:
    """Exact params/FLOPs deltas of every choice at every point, at the given multiples and space.imgsz."""
    base = at_multiples(space.base_cfg, gd, gw, space.imgsz, per_layer=True)
    rows = space.base_cfg["backbone"] + space.base_cfg["head"]
    out = []
    for p in space.points:
        layer = base.layers[p.layer]
        if p.kind == "insert":
            shape = layer.out_shape
            c2 = None
            minus_params, minus_flops = 0, 0.0
        else:
            shape = base.layers[source_index(rows[p.layer][0], p.layer)].out_shape
            c2 = layer.out_shape[1]
            minus_params, minus_flops = layer.params, layer.flops
        for b in p.blocks:
            if b == p.empty:
                out.append(SlotCost(p.name, b, {}, 0, 0.0, tuple(shape[1:])))
                continue
            for hp in block_configs(p, b):
                with torch.device("meta"):
                    module = blocks.build(b, shape[1], c2=c2, **hp)
                params = sum(t.numel() for t in module.parameters())
                flops = module_flops(module, tuple(shape))
                out.append(SlotCost(p.name, b, hp, params - minus_params, flops - minus_flops, tuple(shape[1:])))
    return out


_COST_TABLES: dict[tuple[str, float, float], tuple[int, float, list[SlotCost]]] = {}


def cost_table(space: Space, gd: float, gw: float) -> tuple[int, float, list[SlotCost]]:
    """(base params, base FLOPs, slot costs) at the given multiples, computed once per space and multiples."""
    key = (space.hash, gd, gw)
    if key not in _COST_TABLES:
        base = at_multiples(space.base_cfg, gd, gw, space.imgsz)
        _COST_TABLES[key] = (base.params, base.flops, slot_costs(space, gd, gw))
    return _COST_TABLES[key]


def predict_cost(space: Space, arch: Architecture) -> tuple[int, float]:
    """(params, FLOPs) of an architecture: the base's cost plus each point's exact delta."""
    params, flops, slots = cost_table(space, arch.depth_multiple, arch.width_multiple)
    for p in space.points:
        choice = arch.choices[p.name]
        hp = {k: v for k, v in choice.items() if k != "block"}
        match = [s for s in slots if s.point == p.name and s.block == choice["block"] and s.hyperparameters == hp]
        if not match:
            raise NasError(f"{space.path}: point {p.name!r}: {arch.short()[p.name]} is not a choice of this space")
        params += match[0].params
        flops += match[0].flops
    return params, flops


@dataclass
class SpaceCost:
    """The cost range of a space at one pair of multiples: base, smallest and largest architecture, slots."""

    depth_multiple: float
    width_multiple: float
    base_gflops: float
    base_params: int
    min_gflops: float
    min_params: int
    max_gflops: float
    max_params: int
    slots: list[SlotCost]


def space_costs(space: Space) -> list[SpaceCost]:
    """Per pair of multiples: what the base costs and the cheapest and dearest choice at every point add."""
    out = []
    for gd, gw in itertools.product(space.depth_multiple, space.width_multiple):
        base_params, base_flops, slots = cost_table(space, gd, gw)
        lo_f = hi_f = base_flops
        lo_p = hi_p = base_params
        for p in space.points:
            mine = [s for s in slots if s.point == p.name]
            lo = min(mine, key=lambda s: (s.flops, s.params))
            hi = max(mine, key=lambda s: (s.flops, s.params))
            lo_f, lo_p, hi_f, hi_p = lo_f + lo.flops, lo_p + lo.params, hi_f + hi.flops, hi_p + hi.params
        out.append(SpaceCost(gd, gw, base_flops / 1e9, base_params, lo_f / 1e9, lo_p, hi_f / 1e9, hi_p, slots))
    return out


__all__ = ["SlotCost", "SpaceCost", "cost_table", "predict_cost", "slot_costs", "space_costs"]
