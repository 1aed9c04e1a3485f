"""Compute budgets from `--budget` texts: a GFLOPs limit, a parameter-count limit, a latency limit, or several."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas.errors import NasError

ACCEPTED_FORMS = (
    "10gflops, '10 GFLOPs', 800MFLOPs, 1.2e10flops, 1.5TFLOPs, 5M-params, '5M params', 5e6params, 500k-params, "
    "80ms, '80 ms', 0.08s, 800us"
)
OBJECTIVES = ("gflops", "latency")  # the front's cost axis (`--objective`)

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
_TIME_UNITS = {"us": 1e-3, "µs": 1e-3, "μs": 1e-3, "usec": 1e-3, "ms": 1.0, "msec": 1.0, "s": 1e3, "sec": 1e3}
_TIME_RE = re.compile(
    r"""^\s*
    (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)   # 80, -5 (refused below), 0.08, 8e1
    \s*(?P<unit>us|µs|μs|usec|ms|msec|s|sec)                   # a latency: microseconds, milliseconds, seconds
    \s*$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class Budget:
    """Limits a candidate must stay within; None means no limit of that kind."""

    gflops: float | None = None
    params: int | None = None
    latency_ms: float | None = None  # predicted latency from the study's latency table (nas.latency)

    def __bool__(self) -> bool:
        return self.gflops is not None or self.params is not None or self.latency_ms is not None

    def violations(self, gflops: float, params: int, latency_ms: float | None = None) -> dict[str, float]:
        """Value minus limit for each set limit (feasible when all <= 0), for `trial.set_constraint`."""
        out: dict[str, float] = {}
        if self.gflops is not None:
            out["gflops"] = float(gflops) - self.gflops
        if self.params is not None:
            out["params"] = float(params) - float(self.params)
        if self.latency_ms is not None:
            if latency_ms is None:
                raise ValueError("a latency budget needs the candidate's latency (the study's latency table)")
            out["latency_ms"] = float(latency_ms) - self.latency_ms
        return out

    def exceeded(self, gflops: float, params: int, latency_ms: float | None = None) -> bool:
        """True when any set limit is exceeded."""
        return any(v > 0 for v in self.violations(gflops, params, latency_ms).values())

    def describe(self) -> str:
        """Human-readable form, e.g. '<= 10 GFLOPs, <= 5M params' or 'no budget'."""
        parts = []
        if self.gflops is not None:
            parts.append(f"<= {self.gflops:g} GFLOPs")
        if self.params is not None:
            parts.append(f"<= {format_params(self.params)} params")
        if self.latency_ms is not None:
            parts.append(f"<= {self.latency_ms:g} ms")
        return ", ".join(parts) if parts else "no budget"

    def to_attr(self) -> dict[str, Any]:
        """The study user attr form: {"gflops": float | None, "params": int | None} (+ "latency_ms" when set)."""
        out: dict[str, Any] = {"gflops": self.gflops, "params": self.params}
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out

    @classmethod
    def from_attr(cls, attr: dict[str, Any] | None) -> Budget:
        """Inverse of `to_attr` (missing or None attr -> no budget)."""
        attr = attr or {}
        gflops = attr.get("gflops")
        params = attr.get("params")
        latency = attr.get("latency_ms")
        return cls(
            gflops=None if gflops is None else float(gflops),
            params=None if params is None else int(params),
            latency_ms=None if latency is None else float(latency),
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
    timed = _TIME_RE.match(text)
    if timed is not None:
        unit = timed["unit"].lower() if timed["unit"][0] not in "µμ" else "us"
        ms = float(timed["number"]) * _TIME_UNITS[unit]
        if not math.isfinite(ms) or ms <= 0:
            raise NasError(f"--budget {text!r} must be a positive time; accepted forms: {ACCEPTED_FORMS}")
        return "latency_ms", ms
    match = _BUDGET_RE.match(text)
    if match is None:
        raise NasError(f"--budget {text!r} is not a budget; accepted forms: {ACCEPTED_FORMS}")
    value = float(match["number"]) * _PREFIX[match["prefix"].lower()]
    if not math.isfinite(value) or value <= 0:
        raise NasError(f"--budget {text!r} must be a positive amount; accepted forms: {ACCEPTED_FORMS}")
    kind = "gflops" if match["unit"].lower().startswith("flop") else "params"
    return kind, value


def parse_budget(texts: Sequence[str] | str | None) -> Budget:
    """Parse `--budget` options (at most one GFLOPs, one params and one latency limit) into a Budget."""
    if texts is None:
        return Budget()
    if isinstance(texts, str):
        texts = [texts]
    found: dict[str, tuple[str, float]] = {}
    for text in texts:
        kind, value = _parse_one(str(text))
        if kind in found:
            label = {"gflops": "FLOPs", "params": "params", "latency_ms": "latency"}[kind]
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
    latency = found["latency_ms"][1] if "latency_ms" in found else None
    return Budget(gflops=gflops, params=params, latency_ms=latency)


def check_objective(objective: str) -> str:
    """The `--objective` (front's cost axis): gflops or latency; NasError otherwise."""
    if objective not in OBJECTIVES:
        raise NasError(f"--objective {objective!r} is not one of: {', '.join(OBJECTIVES)}")
    return objective
