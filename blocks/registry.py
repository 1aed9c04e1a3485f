"""The block registry: each block registers itself where it is defined (`@register`), with its search
choices, its domain check and its aliases; its hyperparameters and defaults are read from its constructor,
so they are written once. `resolve`, `validate`, `yaml_hyperparameters`, `choices_for` and `build` read it.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn


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
    check: Callable[[int, dict[str, Any]], None] | None = None  # the domain check (hp complete)


REGISTRY: dict[str, BlockSpec] = {}

#: community names (YOLO blog registrations, official class names) -> canonical name
ALIASES: dict[str, str] = {}

#: defaults an alias carries beyond its block's (see `register`)
_ALIAS_DEFAULTS: dict[str, Callable[[int], dict[str, Any]]] = {}

_LOOKUP: dict[str, str] = {}


def register(name: str, *, choices: dict[str, list], check: Callable[[int, dict[str, Any]], None], summary: str,
             aliases: Sequence[str] = (), alias_defaults: Mapping[str, Callable[[int], dict[str, Any]]] | None = None
             ) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a block under `name`. Its hyperparameters and their defaults are the
    constructor's keyword arguments after the channel count (and after `c2` for a block that may change the
    channel count); `check(channels, hp)` raises BlockError outside the block's domain."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        args = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, channels
        changes = bool(args) and args[0].name == "c2"
        params = args[1:] if changes else args
        spec = BlockSpec(name, cls, tuple(p.name for p in params), {p.name: p.default for p in params},
                         dict(choices), changes, summary, check)
        REGISTRY[name] = spec
        _LOOKUP[name.lower()] = name
        for alias in aliases:
            ALIASES[alias] = name
            _LOOKUP[alias.lower()] = alias
        for alias, fn in (alias_defaults or {}).items():
            _ALIAS_DEFAULTS[alias] = fn
        return cls

    return add


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


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _divisor_hint(channels: int, preferred: Sequence[int]) -> str:
    """'such as 8 or 16': divisors of channels, from the search choices when possible."""
    picks = [p for p in preferred if channels % p == 0]
    if len(picks) < 2:
        picks = sorted({*picks, *(d for d in range(1, channels + 1) if channels % d == 0)})
        picks = [p for p in picks if p > 1] or picks
    picks = picks[:2] if len(picks) <= 2 else [picks[len(picks) // 2 - 1], picks[len(picks) // 2]]
    return " or ".join(str(p) for p in picks)


def int_in(block: str, key: str, v: Any, lo: int, hi: int | None = None, odd: bool = False,
            examples: Sequence[Any] = ()) -> None:
    fits = [e for e in examples if lo <= e and (hi is None or e <= hi)]  # never suggest a value out of range
    ex = f" such as {', '.join(map(str, fits))}" if fits else ""
    if not is_int(v):
        raise BlockError(f"{block}: {key}={v!r} must be an integer{ex}")
    if v < lo or (hi is not None and v > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise BlockError(f"{block}: {key}={v} is out of range; use an integer {rng}{ex}")
    if odd and v % 2 == 0:
        raise BlockError(f"{block}: {key}={v} must be odd so the output keeps its size; "
                         f"use {v - 1} or {v + 1}")


def divides(block: str, key: str, v: int, channels: int, choices: Sequence[int]) -> None:
    if channels % v:
        raise BlockError(f"{block}: {key}={v} does not divide channels={channels}; "
                         f"use a divisor of {channels} such as {_divisor_hint(channels, choices)}")


def boolean(block: str, key: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise BlockError(f"{block}: {key}={v!r} must be true or false")


def validate(name: str, channels: int, hp: Mapping[str, Any]) -> None:
    """Check hyperparameters (missing ones take their defaults) against the block's real domain for
    `channels` input channels; BlockError with one line naming the block and the fix."""
    spec = resolve(name)
    if not is_int(channels) or channels < 1:
        raise BlockError(f"{spec.name}: channels={channels!r} must be a positive integer")
    for key in hp:
        if key not in spec.params:
            close = difflib.get_close_matches(str(key), spec.params, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise BlockError(f"{spec.name}: unknown hyperparameter {key!r}; {hint}"
                             f"{spec.name} takes {', '.join(spec.params)}")
    if spec.check is not None:
        spec.check(channels, {**_defaults(name, channels), **hp})


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
                if spec.check is not None:
                    spec.check(channels, {**base, key: v})
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
        if not is_int(c2) or c2 < 1:
            raise BlockError(f"{spec.name}: output channels c2={c2!r} must be a positive integer")
    if spec.changes_channels:
        return spec.cls(channels, c2 if c2 is not None else channels, **full)
    return spec.cls(channels, **full)
