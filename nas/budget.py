"""Compute budgets from `--budget` texts: a GFLOPs limit, a parameter-count limit, or both."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import NasError

ACCEPTED_FORMS = (
    "10gflops, '10 GFLOPs', 800MFLOPs, 1.2e10flops, 1.5TFLOPs, 5M-params, '5M params', 5e6params, 500k-params"
)

_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12}

_BUDGET_RE = re.compile(
    r"""^\s*
    (?P<number>(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)   # 10, 1.5, .5, 1.2e10
    \s*(?P<prefix>[kmgbt]?)                         # SI prefix (b = billion)
    \s*[-_]?\s*
    (?P<unit>flops?|params?|parameters?)
    \s*$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class Budget:
    """Limits a candidate must stay within; None means no limit of that kind."""

    gflops: float | None = None
    params: int | None = None

    def __bool__(self) -> bool:
        return self.gflops is not None or self.params is not None

    def violations(self, gflops: float, params: int) -> dict[str, float]:
        """Value minus limit for each set limit (feasible when all <= 0), for `trial.set_constraint`."""
        out: dict[str, float] = {}
        if self.gflops is not None:
            out["gflops"] = float(gflops) - self.gflops
        if self.params is not None:
            out["params"] = float(params) - float(self.params)
        return out

    def exceeded(self, gflops: float, params: int) -> bool:
        """True when any set limit is exceeded."""
        return any(v > 0 for v in self.violations(gflops, params).values())

    def describe(self) -> str:
        """Human-readable form, e.g. '<= 10 GFLOPs, <= 5M params' or 'no budget'."""
        parts = []
        if self.gflops is not None:
            parts.append(f"<= {self.gflops:g} GFLOPs")
        if self.params is not None:
            parts.append(f"<= {format_params(self.params)} params")
        return ", ".join(parts) if parts else "no budget"

    def to_attr(self) -> dict[str, Any]:
        """The study user attr form: {"gflops": float | None, "params": int | None}."""
        return {"gflops": self.gflops, "params": self.params}

    @classmethod
    def from_attr(cls, attr: dict[str, Any] | None) -> Budget:
        """Inverse of `to_attr` (missing or None attr -> no budget)."""
        attr = attr or {}
        gflops = attr.get("gflops")
        params = attr.get("params")
        return cls(
            gflops=None if gflops is None else float(gflops),
            params=None if params is None else int(params),
        )


def format_params(n: int | float) -> str:
    """Short parameter count: 1.87M, 512k, 950."""
    n = float(n)
    if abs(n) >= 1e9:
        return f"{n / 1e9:.3g}B"
    if abs(n) >= 1e6:
        return f"{n / 1e6:.3g}M"
    if abs(n) >= 1e3:
        return f"{n / 1e3:.3g}k"
    return f"{n:.0f}"


def _parse_one(text: str) -> tuple[str, float]:
    match = _BUDGET_RE.match(text)
    if match is None:
        raise NasError(f"--budget {text!r} is not a budget; accepted forms: {ACCEPTED_FORMS}")
    value = float(match["number"]) * _PREFIX[match["prefix"].lower()]
    if not math.isfinite(value) or value <= 0:
        raise NasError(f"--budget {text!r} must be a positive amount; accepted forms: {ACCEPTED_FORMS}")
    kind = "gflops" if match["unit"].lower().startswith("flop") else "params"
    return kind, value


def parse_budget(texts: Sequence[str] | str | None) -> Budget:
    """Parse `--budget` options (at most one GFLOPs and one params limit) into a Budget."""
    if texts is None:
        return Budget()
    if isinstance(texts, str):
        texts = [texts]
    found: dict[str, tuple[str, float]] = {}
    for text in texts:
        kind, value = _parse_one(str(text))
        if kind in found:
            label = "FLOPs" if kind == "gflops" else "params"
            raise NasError(
                f"--budget given two {label} limits ({found[kind][0]!r} and {text!r}); "
                "keep one (a FLOPs limit and a params limit may be combined)"
            )
        found[kind] = (str(text), value)
    gflops = found["gflops"][1] / 1e9 if "gflops" in found else None
    params = None
    if "params" in found:
        params = int(round(found["params"][1]))
        if params < 1:
            raise NasError(f"--budget {found['params'][0]!r} is less than one parameter")
    return Budget(gflops=gflops, params=params)
