"""Sampling a space: an Optuna trial -> Architecture (categorical choices, conditional hyperparameters),
the params that replay an Architecture, the baseline, and counting the architectures a space holds."""

from __future__ import annotations

import itertools
import math
from typing import Any

from nas.space.schema import Architecture, Point, Space


def _param(point: Point, block: str, hname: str) -> str:
    return f"{point.name}.{block}.{hname}"


def sample(space: Space, trial: Any) -> Architecture:
    """Sample an Architecture with categorical suggestions only; a hyperparameter is suggested only when its
    block is chosen, under a stable name `<point>.<block>.<hyperparameter>`."""
    gd = space.depth_multiple[0] if len(space.depth_multiple) == 1 else \
        float(trial.suggest_categorical("depth_multiple", list(space.depth_multiple)))
    gw = space.width_multiple[0] if len(space.width_multiple) == 1 else \
        float(trial.suggest_categorical("width_multiple", list(space.width_multiple)))
    choices: dict[str, dict[str, Any]] = {}
    for p in space.points:
        block = trial.suggest_categorical(f"{p.name}.block", list(p.blocks))
        choice: dict[str, Any] = {"block": block}
        for hname, values in p.hyperparameters.get(block, {}).items():
            choice[hname] = values[0] if len(values) == 1 else trial.suggest_categorical(
                _param(p, block, hname), list(values))
        choices[p.name] = choice
    return Architecture(gd, gw, choices)


def trial_params(space: Space, arch: Architecture) -> dict[str, Any]:
    """The Optuna params that make `sample` return arch (for enqueue_trial)."""
    params: dict[str, Any] = {}
    if len(space.depth_multiple) > 1:
        params["depth_multiple"] = arch.depth_multiple
    if len(space.width_multiple) > 1:
        params["width_multiple"] = arch.width_multiple
    for p in space.points:
        choice = arch.choices[p.name]
        params[f"{p.name}.block"] = choice["block"]
        for hname, values in p.hyperparameters.get(choice["block"], {}).items():
            if len(values) > 1:
                params[_param(p, choice["block"], hname)] = choice[hname]
    return params


def baseline(space: Space) -> Architecture:
    """The unmodified base model: no block anywhere, the base's own multiples when they are choices."""
    gd = float(space.base_cfg["depth_multiple"])
    gw = float(space.base_cfg["width_multiple"])
    gd = gd if gd in space.depth_multiple else space.depth_multiple[0]
    gw = gw if gw in space.width_multiple else space.width_multiple[0]
    return Architecture(gd, gw, {p.name: {"block": p.empty} for p in space.points})


def has_baseline(space: Space) -> bool:
    """Whether the unmodified base model is one of the space's architectures: every point offers its empty
    choice (none or keep). A space that makes some block mandatory has no baseline to score first."""
    return all(p.empty in p.blocks for p in space.points)


def n_architectures(space: Space) -> int:
    """How many distinct architectures the space holds."""
    total = len(space.depth_multiple) * len(space.width_multiple)
    for p in space.points:
        total *= sum(math.prod(len(v) for v in p.hyperparameters.get(b, {}).values()) for b in p.blocks)
    return total


def block_configs(point: Point, block: str) -> list[dict[str, Any]]:
    """Every hyperparameter combination of one block at one point."""
    hp = point.hyperparameters.get(block, {})
    keys = list(hp)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(hp[k] for k in keys))]

