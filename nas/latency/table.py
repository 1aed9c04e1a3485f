"""Per-slot latency table of a space: the base's latency at each pair of multiples and what each block choice
adds at each point, measured once per key and predicted for any architecture as base + its slots' deltas.

It mirrors nas.cost's GFLOPs tables (`cost_table`, `predict_cost`, `space_costs`), with one difference:
FLOPs add up exactly, latency only roughly (blocks at two points share caches and threads), so the table's
error is measured (bench/bench_latency.py) rather than assumed away. A delta is measured interleaved with the
base it is added to: each point's group (the base and the base with each one of that point's choices) runs
round by round, and delta = min(base + block) - min(base) within the group. The table is plain JSON: the
search keeps it in the study's user attrs under its `key`, and reuses it when the key matches.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.errors import NasError
from nas.latency.measure import (
    REPEATS,
    RETRIES,
    THRESHOLD,
    WARMUP,
    Latency,
    check_runtime,
    device_name,
    measure_many,
    versions,
)

if TYPE_CHECKING:
    from nas.space import Architecture, Space

FORMAT = 1  # bump when the stored layout changes: an older table is measured again


@dataclass(frozen=True)
class SlotLatency:
    """What one block choice (one hyperparameter setting) adds at one point, in milliseconds."""

    point: str
    block: str
    hyperparameters: dict[str, Any]
    ms: float  # delta: latency(base + this block) - latency(base); 0 for none/keep
    spread: float  # the larger of the two measurements' spreads
    noisy: bool


@dataclass(frozen=True)
class MultipleLatency:
    """The base's latency at one pair of multiples and every slot's delta there."""

    depth_multiple: float
    width_multiple: float
    base: Latency
    slots: list[SlotLatency]


@dataclass
class LatencyTable:
    """A space's latency table under one key (see `latency_key`)."""

    key: dict[str, Any]
    multiples: list[MultipleLatency] = field(default_factory=list)

    @property
    def noisy(self) -> bool:
        """True when any base or delta was measured on a machine too busy to trust it."""
        return any(m.base.noisy or any(s.noisy for s in m.slots) for m in self.multiples)

    @property
    def runtime(self) -> str:
        return str(self.key["runtime"])

    @property
    def threads(self) -> int:
        return int(self.key["threads"])

    def describe(self) -> str:
        """'torch, 1 thread, cpu (AMD EPYC), 640x640' and a NOISY note when flagged."""
        h, w = self.key["imgsz"]
        t = self.threads
        text = f"{self.runtime}, {t} thread{'s' if t != 1 else ''}, {self.key['device']}, {h}x{w}"
        return text + ("; NOISY: some entries were measured on a busy machine" if self.noisy else "")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "key": dict(self.key), "multiples": [
            {"depth_multiple": m.depth_multiple, "width_multiple": m.width_multiple, "base": m.base.to_dict(),
             "slots": [{"point": s.point, "block": s.block, "hyperparameters": dict(s.hyperparameters),
                        "ms": s.ms, "spread": s.spread, "noisy": s.noisy} for s in m.slots]}
            for m in self.multiples]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyTable:
        """Inverse of `to_dict`; ValueError for a damaged table or another format."""
        try:
            if d.get("format") != FORMAT:
                raise ValueError(f"latency table format {d.get('format')!r}, not {FORMAT}")
            return cls(dict(d["key"]), [
                MultipleLatency(float(m["depth_multiple"]), float(m["width_multiple"]), Latency.from_dict(m["base"]),
                                [SlotLatency(str(s["point"]), str(s["block"]), dict(s["hyperparameters"]),
                                             float(s["ms"]), float(s["spread"]), bool(s["noisy"]))
                                 for s in m["slots"]])
                for m in d["multiples"]])
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"damaged latency table: {e}") from None


def latency_key(space: Space, runtime: str = "torch", threads: int = 1, device: str = "cpu",
                nc: int | None = None) -> dict[str, Any]:
    """What a table's numbers depend on: space, imgsz, classes, runtime, threads, device and versions."""
    check_runtime(runtime, threads)
    return {"space_hash": space.hash, "imgsz": list(space.imgsz), "nc": int(nc or space.base_cfg["nc"]),
            "runtime": runtime, "threads": int(threads), "device": device_name(runtime, device),
            **versions(runtime)}


def key_hash(key: dict[str, Any]) -> str:
    """A short stable hash of a key, for messages and file names."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _one_block(space: Space, gd: float, gw: float, point: str | None = None, choice: dict | None = None):
    from nas.space import Architecture

    choices = {p.name: {"block": p.empty} for p in space.points}
    if point is not None:
        choices[point] = dict(choice or {})
    return Architecture(gd, gw, choices)


def measure_table(space: Space, runtime: str = "torch", threads: int = 1, device: str = "cpu",
                  nc: int | None = None, *, warmup: int = WARMUP, repeats: int = REPEATS, retries: int = RETRIES,
                  threshold: float = THRESHOLD, progress: Callable[[int, int], None] | None = None) -> LatencyTable:
    """Measure the table: at each pair of multiples and each point, the base and the base with each one of the
    point's choices, interleaved. `progress(done, total)` is called after each point's group."""
    from nas.space import block_configs, render

    key = latency_key(space, runtime, threads, device, nc)
    pairs = list(itertools.product(space.depth_multiple, space.width_multiple))
    total = len(pairs) * len(space.points)
    done = 0
    out = []
    for gd, gw in pairs:
        base_arch = _one_block(space, gd, gw)
        base_cfg = dict(render(space, base_arch), nc=key["nc"])
        bases: list[Latency] = []
        slots: list[SlotLatency] = []
        for p in space.points:
            configs = [(b, hp) for b in p.blocks if b != p.empty for hp in block_configs(p, b)]
            cfgs = [dict(render(space, _one_block(space, gd, gw, p.name, {"block": b, **hp})), nc=key["nc"])
                    for b, hp in configs]
            got = measure_many([base_cfg, *cfgs], space.imgsz, runtime=runtime, threads=threads, device=device,
                               warmup=warmup, repeats=repeats, retries=retries, threshold=threshold)
            bases.append(got[0])
            slots.append(SlotLatency(p.name, p.empty, {}, 0.0, got[0].spread, got[0].noisy))
            for (b, hp), lat in zip(configs, got[1:], strict=True):
                spread = max(lat.spread, got[0].spread)
                slots.append(SlotLatency(p.name, b, hp, lat.ms - got[0].ms, spread, lat.noisy or got[0].noisy))
            done += 1
            if progress is not None:
                progress(done, total)
        if not bases:  # a space without points: the base alone
            bases = measure_many([base_cfg], space.imgsz, runtime=runtime, threads=threads, device=device,
                                 warmup=warmup, repeats=repeats, retries=retries, threshold=threshold)
        base = min(bases, key=lambda b: b.ms)  # the minimum over every round the base ran in
        base = Latency(base.ms, max(b.spread for b in bases), base.repeats, base.runtime, base.threads, base.device,
                       any(b.noisy for b in bases))
        out.append(MultipleLatency(gd, gw, base, slots))
    return LatencyTable(key, out)


def _entry(table: LatencyTable, gd: float, gw: float) -> MultipleLatency:
    for m in table.multiples:
        if m.depth_multiple == gd and m.width_multiple == gw:
            return m
    raise NasError(f"the latency table has no entry at depth {gd:g}, width {gw:g}: it was measured for another "
                   f"space; measure it again")


def predict(table: LatencyTable, arch: Architecture) -> float:
    """Predicted latency (ms) of an architecture: the base's at its multiples plus each point's delta."""
    m = _entry(table, arch.depth_multiple, arch.width_multiple)
    ms = m.base.ms
    for point, choice in arch.choices.items():
        hp = {k: v for k, v in choice.items() if k != "block"}
        match = [s for s in m.slots if s.point == point and s.block == choice["block"] and s.hyperparameters == hp]
        if not match:
            raise NasError(f"point {point!r}: {arch.short()[point]} is not in the latency table (measured for "
                           f"another space); measure it again")
        ms += match[0].ms
    return ms


@dataclass
class SpaceLatency:
    """The latency range of a space at one pair of multiples, like nas.cost.SpaceCost."""

    depth_multiple: float
    width_multiple: float
    base_ms: float
    min_ms: float
    max_ms: float
    slots: list[SlotLatency]


def space_latencies(table: LatencyTable, space: Space) -> list[SpaceLatency]:
    """Per pair of multiples: the base's latency and the predicted fastest and slowest architecture."""
    out = []
    for m in table.multiples:
        lo = hi = m.base.ms
        for p in space.points:
            mine = [s.ms for s in m.slots if s.point == p.name]
            lo, hi = lo + min(mine), hi + max(mine)
        out.append(SpaceLatency(m.depth_multiple, m.width_multiple, m.base.ms, lo, hi, m.slots))
    return out


def slot_ms(table: LatencyTable, gd: float, gw: float, point: str, block: str, hp: dict[str, Any]) -> SlotLatency:
    """One slot's entry (for reports that list the slots of nas.cost next to their latency)."""
    for s in _entry(table, gd, gw).slots:
        if s.point == point and s.block == block and s.hyperparameters == hp:
            return s
    raise NasError(f"point {point!r}: {block} {hp} is not in the latency table")


__all__ = ["FORMAT", "LatencyTable", "MultipleLatency", "SlotLatency", "SpaceLatency", "key_hash", "latency_key",
           "measure_table", "predict", "slot_ms", "space_latencies"]
