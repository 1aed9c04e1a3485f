"""How differently GFLOPs and latency order a study's candidates: Kendall τ between the two costs over every
candidate the latency table priced (and over the trained ones' measured latency), the share of pairs the two
costs put in opposite order, and the most misleading pair, so a user sees when a GFLOPs front misleads."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from nas.audit.stats import kendall_tau
from nas.record import TrialRecord


@dataclass(frozen=True)
class CostOrder:
    """GFLOPs against latency over one study's candidates."""

    n: int  # candidates with GFLOPs and a predicted latency (distinct models)
    tau: float  # Kendall τ-b, GFLOPs vs predicted latency
    discordant: float  # share of pairs (untied in both) that GFLOPs and latency order oppositely
    n_measured: int  # trained candidates with a measured latency
    tau_measured: float  # Kendall τ-b, GFLOPs vs measured latency (nan with fewer than 2)
    pair: dict[str, Any] | None  # the most misleading pair: fewer GFLOPs, and the most ms more than the other

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    def line(self) -> str:
        """One sentence for the terminal."""
        tau = "-" if not math.isfinite(self.tau) else f"{self.tau:.2f}"
        measured = ("" if not math.isfinite(self.tau_measured)
                    else f", {self.tau_measured:.2f} against measured latency over {self.n_measured} trained")
        text = (f"GFLOPs vs latency: Kendall τ {tau} over {self.n} candidates (predicted latency){measured}; "
                f"{self.discordant:.0%} of pairs in opposite order")
        if self.pair is not None:
            a, b = self.pair["lighter"], self.pair["heavier"]
            text += (f"; most misleading: trial {a['trial']} has fewer GFLOPs than trial {b['trial']} "
                     f"({a['gflops']:.2f} vs {b['gflops']:.2f}) but takes {a['ms'] - b['ms']:.1f} ms more "
                     f"({a['ms']:.1f} vs {b['ms']:.1f} ms)")
        return text


def cost_order(records: Iterable[TrialRecord]) -> CostOrder | None:
    """GFLOPs against latency over the candidates of a study; None when it priced fewer than two in latency."""
    seen: set[str] = set()
    rows: list[TrialRecord] = []
    for r in records:
        if r.gflops is None or r.latency_ms is None or r.reused_from is not None:
            continue
        key = r.model_hash or str(r.number)  # one model counted once (reused twins carry its score)
        if key not in seen:
            seen.add(key)
            rows.append(r)
    if len(rows) < 2:
        return None
    gflops = [float(r.gflops) for r in rows]
    ms = [float(r.latency_ms) for r in rows]
    measured = [r for r in rows if r.measured_latency_ms is not None]
    opposite = untied = 0
    worst: tuple[float, TrialRecord, TrialRecord] | None = None
    for i in range(len(rows)):
        for j in range(len(rows)):
            if i >= j:
                continue
            dg, dm = gflops[i] - gflops[j], ms[i] - ms[j]
            if dg == 0 or dm == 0:
                continue
            untied += 1
            if (dg > 0) != (dm > 0):
                opposite += 1
                lighter, heavier = (rows[i], rows[j]) if dg < 0 else (rows[j], rows[i])
                gap = abs(dm)
                if worst is None or gap > worst[0]:
                    worst = (gap, lighter, heavier)
    pair = None
    if worst is not None:
        pair = {name: {"trial": r.number, "gflops": float(r.gflops), "ms": float(r.latency_ms)}
                for name, r in (("lighter", worst[1]), ("heavier", worst[2]))}
    return CostOrder(
        n=len(rows), tau=kendall_tau(gflops, ms), discordant=opposite / untied if untied else 0.0,
        n_measured=len(measured),
        tau_measured=kendall_tau([float(r.gflops) for r in measured], [float(r.measured_latency_ms) for r in measured]),
        pair=pair)


__all__ = ["CostOrder", "cost_order"]
