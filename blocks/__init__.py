"""The attention blocks a search may insert into a YOLOv5 model, and the registry the model builder reads.

Each block takes NCHW and returns the same shape (FocalModulation may change the channel count, to
replace SPPF). In a model YAML a block's args are `[channels, *hyperparameters]`; the builder calls
`yaml_hyperparameters(name, c1, args[1:])` then `build(name, c1, c2, **hp)`. See blocks/README.md.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from blocks.biformer import BiFormer
from blocks.fla import FLA
from blocks.focal import FocalModulation
from blocks.ge import GE
from blocks.sge import SGE

__all__ = [
    "ALIASES", "REGISTRY", "BlockError", "BlockSpec", "BiFormer", "FLA", "FocalModulation", "GE", "SGE",
    "build", "choices_for", "resolve", "validate", "yaml_hyperparameters",
]


class BlockError(ValueError):
    """A bad block name, hyperparameter or channel count; the message is one line naming the block and
    the fix (the model builder adds the file and layer)."""


@dataclass(frozen=True, eq=False)
class BlockSpec:
    """What the builder and the search need to know about one block."""

    name: str
    cls: type[nn.Module]
    params: tuple[str, ...]  # hyperparameter names in YAML positional order, after the channel count
    defaults: dict[str, Any]
    choices: dict[str, list]  # the values a search space may try
    changes_channels: bool  # True when c2 may differ from c1 (FocalModulation replacing SPPF)
    summary: str


REGISTRY: dict[str, BlockSpec] = {
    spec.name: spec
    for spec in (
        BlockSpec(
            "SGE", SGE, ("groups",), {"groups": 8}, {"groups": [4, 8, 16, 32, 64]}, False,
            "Spatial Group-wise Enhance (Li et al. 2019): per-group spatial gate, 2*groups params",
        ),
        BlockSpec(
            "GE", GE, ("extent", "param_gather", "excite_mlp"),
            {"extent": "global", "param_gather": True, "excite_mlp": True},
            {"extent": ["global", 2, 4, 8], "param_gather": [False, True], "excite_mlp": [False, True]},
            False,
            "Gather-Excite (Hu et al., NeurIPS 2018): GE-θ⁻ / GE-θ / GE-θ+ context gate",
        ),
        BlockSpec(
            "FLA", FLA, ("num_heads", "focusing_factor", "kernel_size"),
            {"num_heads": 8, "focusing_factor": 3, "kernel_size": 5},
            {"num_heads": [1, 2, 4, 8], "focusing_factor": [2, 3, 4], "kernel_size": [3, 5, 7]},
            False,
            "Focused Linear Attention (Han et al., ICCV 2023): global linear attention + DWC",
        ),
        BlockSpec(
            "BiFormer", BiFormer, ("num_heads", "n_win", "topk", "side_dwconv"),
            {"num_heads": 8, "n_win": 7, "topk": 4, "side_dwconv": 3},
            {"num_heads": [1, 2, 4, 8], "n_win": [4, 7, 8], "topk": [1, 2, 4, 8, 16],
             "side_dwconv": [0, 3, 5]},
            False,
            "Bi-level Routing Attention (Zhu et al., CVPR 2023): top-k region routing + token attention",
        ),
        BlockSpec(
            "FocalModulation", FocalModulation, ("focal_level", "focal_window", "focal_factor"),
            {"focal_level": 2, "focal_window": 3, "focal_factor": 2},
            {"focal_level": [1, 2, 3], "focal_window": [3, 5, 7], "focal_factor": [2]},
            True,
            "Focal Modulation (Yang et al., NeurIPS 2022): gated multi-level context; can replace SPPF",
        ),
    )
}

#: community names (YOLO blog registrations, official class names) -> canonical name
ALIASES: dict[str, str] = {
    "SpatialGroupEnhance": "SGE",
    "GatherExcite": "GE",
    "FocusedLinearAttention": "FLA",
    "BiLevelRoutingAttention": "BiFormer",
    "BiLevelRoutingAttention_nchw": "BiFormer",
    "BRA": "BiFormer",
    "FocalModulation": "FocalModulation",
}

#: defaults an alias carries beyond its block's: the blog registration of SpatialGroupEnhance passes the
#: channel count where `groups` goes, so a blog YAML's SpatialGroupEnhance has groups == channels.
_ALIAS_DEFAULTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "SpatialGroupEnhance": lambda channels: {"groups": channels},
}

_LOOKUP: dict[str, str] = {n.lower(): n for n in [*REGISTRY, *ALIASES]}


def _known() -> str:
    return ", ".join([*REGISTRY, *(a for a in ALIASES if a not in REGISTRY)])


def _exact_name(name: Any) -> str:
    """The registered spelling (canonical or alias) of `name`, matched case-insensitively."""
    if not isinstance(name, str) or name.lower() not in _LOOKUP:
        close = difflib.get_close_matches(str(name), [*REGISTRY, *ALIASES], n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise BlockError(f"unknown block {name!r}; {hint}known blocks: {_known()}")
    return _LOOKUP[name.lower()]


def resolve(name: str) -> BlockSpec:
    """The BlockSpec of a canonical name or alias (case-insensitive); BlockError listing the known ones."""
    exact = _exact_name(name)
    return REGISTRY[ALIASES.get(exact, exact)]


def _defaults(name: str, channels: int) -> dict[str, Any]:
    """The block's defaults, overridden by the alias's own (e.g. SpatialGroupEnhance: groups=channels)."""
    exact = _exact_name(name)
    spec = REGISTRY[ALIASES.get(exact, exact)]
    out = dict(spec.defaults)
    if exact in _ALIAS_DEFAULTS:
        out.update(_ALIAS_DEFAULTS[exact](channels))
    return out


# ---------------------------------------------------------------- validation


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _divisor_hint(channels: int, preferred: Sequence[int]) -> str:
    """'such as 8 or 16': divisors of channels, from the search choices when possible."""
    picks = [p for p in preferred if channels % p == 0]
    if len(picks) < 2:
        picks = sorted({*picks, *(d for d in range(1, channels + 1) if channels % d == 0)})
        picks = [p for p in picks if p > 1] or picks
    picks = picks[:2] if len(picks) <= 2 else [picks[len(picks) // 2 - 1], picks[len(picks) // 2]]
    return " or ".join(str(p) for p in picks)


def _int_in(block: str, key: str, v: Any, lo: int, hi: int | None = None, odd: bool = False,
            examples: Sequence[Any] = ()) -> None:
    ex = f" such as {', '.join(map(str, examples))}" if examples else ""
    if not _is_int(v):
        raise BlockError(f"{block}: {key}={v!r} must be an integer{ex}")
    if v < lo or (hi is not None and v > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise BlockError(f"{block}: {key}={v} is out of range; use an integer {rng}{ex}")
    if odd and v % 2 == 0:
        raise BlockError(f"{block}: {key}={v} must be odd so the output keeps its size; "
                         f"use {v - 1} or {v + 1}")


def _divides(block: str, key: str, v: int, channels: int, choices: Sequence[int]) -> None:
    if channels % v:
        raise BlockError(f"{block}: {key}={v} does not divide channels={channels}; "
                         f"use a divisor of {channels} such as {_divisor_hint(channels, choices)}")


def _bool(block: str, key: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise BlockError(f"{block}: {key}={v!r} must be true or false")


def _check_sge(channels: int, hp: dict[str, Any]) -> None:
    _int_in("SGE", "groups", hp["groups"], 1, channels, examples=[8, 16])
    _divides("SGE", "groups", hp["groups"], channels, REGISTRY["SGE"].choices["groups"])


def _check_ge(channels: int, hp: dict[str, Any]) -> None:
    e = hp["extent"]
    if not (e == "global" or (_is_int(e) and e in (2, 4, 8))):
        raise BlockError(f"GE: extent={e!r} is not supported; use 'global', 2, 4 or 8")
    _bool("GE", "param_gather", hp["param_gather"])
    _bool("GE", "excite_mlp", hp["excite_mlp"])


def _check_fla(channels: int, hp: dict[str, Any]) -> None:
    _int_in("FLA", "num_heads", hp["num_heads"], 1, channels, examples=[1, 2, 4, 8])
    _divides("FLA", "num_heads", hp["num_heads"], channels, REGISTRY["FLA"].choices["num_heads"])
    p = hp["focusing_factor"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 1 <= p <= 8:
        raise BlockError(f"FLA: focusing_factor={p!r} must be a number between 1 and 8 (the paper uses 3)")
    _int_in("FLA", "kernel_size", hp["kernel_size"], 1, 31, odd=True, examples=[3, 5, 7])


def _check_biformer(channels: int, hp: dict[str, Any]) -> None:
    _int_in("BiFormer", "num_heads", hp["num_heads"], 1, channels, examples=[1, 2, 4, 8])
    _divides("BiFormer", "num_heads", hp["num_heads"], channels, REGISTRY["BiFormer"].choices["num_heads"])
    _int_in("BiFormer", "n_win", hp["n_win"], 1, 64, examples=[4, 7, 8])
    n = hp["n_win"]
    _int_in("BiFormer", "topk", hp["topk"], 1, examples=[1, 4, 16])
    if hp["topk"] > n * n:
        raise BlockError(f"BiFormer: topk={hp['topk']} routes to more regions than the n_win*n_win={n * n} "
                         f"that exist; use topk <= {n * n} or a larger n_win")
    s = hp["side_dwconv"]
    _int_in("BiFormer", "side_dwconv", s, 0, 31, examples=[0, 3, 5])
    if s > 0 and s % 2 == 0:
        raise BlockError(f"BiFormer: side_dwconv={s} must be 0 (no LePE) or odd; use {s - 1} or {s + 1}")


def _check_focal(channels: int, hp: dict[str, Any]) -> None:
    _int_in("FocalModulation", "focal_level", hp["focal_level"], 1, 8, examples=[1, 2, 3])
    _int_in("FocalModulation", "focal_window", hp["focal_window"], 1, 31, odd=True, examples=[3, 5, 7])
    f = hp["focal_factor"]
    _int_in("FocalModulation", "focal_factor", f, 0, 8, examples=[2])
    if f % 2:
        raise BlockError(f"FocalModulation: focal_factor={f} must be even so every focal kernel stays odd; "
                         f"use {f - 1} or {f + 1}")


_CHECKS: dict[str, Callable[[int, dict[str, Any]], None]] = {
    "SGE": _check_sge, "GE": _check_ge, "FLA": _check_fla, "BiFormer": _check_biformer,
    "FocalModulation": _check_focal,
}


def validate(name: str, channels: int, hp: Mapping[str, Any]) -> None:
    """Check hyperparameters (missing ones take their defaults) against the block's real domain for
    `channels` input channels; BlockError with one line naming the block and the fix."""
    spec = resolve(name)
    if not _is_int(channels) or channels < 1:
        raise BlockError(f"{spec.name}: channels={channels!r} must be a positive integer")
    for key in hp:
        if key not in spec.params:
            close = difflib.get_close_matches(str(key), spec.params, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise BlockError(f"{spec.name}: unknown hyperparameter {key!r}; {hint}"
                             f"{spec.name} takes {', '.join(spec.params)}")
    _CHECKS[spec.name](channels, {**_defaults(name, channels), **hp})


def yaml_hyperparameters(name: str, channels: int, args: Sequence[Any] | None) -> dict[str, Any]:
    """The YAML args after the channel count (positional, or one mapping) -> complete, validated
    hyperparameters in `params` order, defaults (and the alias's own defaults) filled in."""
    spec = resolve(name)
    args = list(args or [])
    if len(args) == 1 and isinstance(args[0], Mapping):
        given = dict(args[0])
    elif any(isinstance(a, Mapping) for a in args):
        raise BlockError(f"{spec.name}: give hyperparameters either positionally or as one mapping, "
                         f"not both; e.g. [C, {{{spec.params[0]}: {spec.defaults[spec.params[0]]!r}}}]")
    else:
        if len(args) > len(spec.params):
            raise BlockError(f"{spec.name}: got {len(args)} args after the channel count {args} but "
                             f"{spec.name} takes at most {len(spec.params)} ({', '.join(spec.params)})")
        given = dict(zip(spec.params, args, strict=False))
    validate(name, channels, given)
    full = {**_defaults(name, channels), **given}
    return {k: full[k] for k in spec.params}


def choices_for(name: str, channels: int) -> dict[str, list]:
    """The block's search choices that are valid for `channels` (e.g. SGE groups dividing the channels)."""
    spec = resolve(name)
    base = _defaults(name, channels)
    out: dict[str, list] = {}
    for key, values in spec.choices.items():
        ok = []
        for v in values:
            try:
                _CHECKS[spec.name](channels, {**base, key: v})
            except BlockError:
                continue
            ok.append(v)
        out[key] = ok
    return out


def build(name: str, channels: int, c2: int | None = None, **hp: Any) -> nn.Module:
    """A block for `channels` input channels: NCHW in, (N, c2 or channels, H, W) out. Missing
    hyperparameters take their defaults; c2 may differ from channels only for FocalModulation."""
    spec = resolve(name)
    validate(name, channels, hp)
    full = {**_defaults(name, channels), **hp}
    if c2 is not None and c2 != channels:
        if not spec.changes_channels:
            raise BlockError(f"{spec.name}: output channels c2={c2} differ from the input's {channels}; "
                             f"{spec.name} keeps the channel count, so its first YAML arg must give the "
                             f"input's width ({channels} after width scaling)")
        if not _is_int(c2) or c2 < 1:
            raise BlockError(f"{spec.name}: output channels c2={c2!r} must be a positive integer")
    if spec.changes_channels:
        return spec.cls(channels, c2 if c2 is not None else channels, **full)
    return spec.cls(channels, **full)
