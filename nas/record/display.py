"""A candidate's choices in one short line: the format every report, table and header shares."""

from __future__ import annotations

from typing import Any

from nas.record.trial import TrialRecord, as_float

_NO_BLOCK = ("none", "keep", "", "-")


def describe(candidate: TrialRecord | Any, points: list[str] | None = None) -> str:
    """All of a candidate's choices in one short line, the format every report shares.

    `candidate`: a TrialRecord, an Architecture, or its dict (the `arch` attr). E.g.
    'w0.375 d0.33 P3=SGE(groups=8) P5=FLA(num_heads=4)'; points left as none/keep are omitted, and a
    candidate without blocks reads 'w0.25 d0.33 (no blocks)'. `points` orders the points (others follow).
    """
    if isinstance(candidate, TrialRecord):
        arch, choices = candidate.arch or {}, dict(candidate.choices)
    elif isinstance(candidate, dict):
        arch, choices = candidate, {}
    else:  # an Architecture (or anything with the same attributes)
        arch = {"width_multiple": getattr(candidate, "width_multiple", None),
                "depth_multiple": getattr(candidate, "depth_multiple", None),
                "choices": getattr(candidate, "choices", None)}
        choices = {}
    if not choices and isinstance(arch.get("choices"), dict):
        choices = {p: _choice_text(c) for p, c in arch["choices"].items()}
    multiples = [f"{tag}{value:g}" for tag, value in (("w", as_float(arch.get("width_multiple"))),
                                                      ("d", as_float(arch.get("depth_multiple"))))
                 if value is not None]
    order = [p for p in (points or []) if p in choices] + [p for p in choices if p not in (points or [])]
    blocks = [f"{p}={choices[p]}" for p in order if str(choices[p]).strip().lower() not in _NO_BLOCK]
    return " ".join(multiples + (blocks or ["(no blocks)"]))


def _choice_text(choice: Any) -> str:
    """One point of an `arch` dict ({"block": "SGE", "groups": 8}) -> 'SGE(groups=8)', 'none' or 'keep'."""
    if not isinstance(choice, dict):
        return str(choice)
    hp = ", ".join(f"{k}={v}" for k, v in choice.items() if k != "block")
    block = str(choice.get("block", "none"))
    return f"{block}({hp})" if hp else block


__all__ = ["describe"]
