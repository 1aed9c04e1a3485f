"""The audit report: rank agreement of the proxy (and of cheaper scores) with the reference, seed noise, a verdict.

Pure functions on plain data (`CandidateRuns`), so they are unit-testable and shared with the fidelity bench.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.audit.stats import (
    Correlation,
    correlate,
    kendall_tau,
    loss_ema,
    loss_sum,
    mean_pairwise_tau,
    pooled_sd,
    seed_sd,
)
from nas.files import check_output, save_figure

# every score is "higher is better"; the loss scores are negated
SCORES = {
    "proxy": "the search's score: best-epoch fitness of the seed-0 proxy run",
    "last epoch": "fitness of the last proxy epoch",
    "loss sum": "minus the sum of per-epoch training losses (Ru et al. 2021)",
    "loss EMA": "minus an exponential moving average (decay 0.9) of per-epoch training losses",
    "mean of seeds": "best-epoch fitness averaged over every proxy seed",
    "GFLOPs": "model cost alone (what a proxy has to beat)",
    "params": "parameter count alone",
}
GOOD_TAU = 0.7  # the accept line (Vertex AI NAS asks for rank correlation >= 0.65)
FAIR_TAU = 0.4
MIN_CANDIDATES = 10  # Vertex AI NAS judges a proxy over 10-20 models; below that τ's bootstrap interval is too kind
SEED_TAU = 0.6  # a proxy whose own seeds agree less than this cannot be trusted to order candidates


@dataclass
class CandidateRuns:
    """One candidate's finished runs: proxy runs by seed and the reference run (plain dicts with fitness/history)."""

    key: str
    label: str
    gflops: float
    params: int
    proxy: dict[int, dict] = field(default_factory=dict)
    reference: dict | None = None
    trial: int | None = None
    baseline: bool = False


def _losses(run: dict) -> list[float]:
    return [float(r["loss"]) for r in run.get("history", []) if "loss" in r]


def scores(c: CandidateRuns, seed: int) -> dict[str, float]:
    """Every score of one candidate (nan where its runs do not allow it)."""
    nan = float("nan")
    run0 = c.proxy.get(seed)
    hist = (run0 or {}).get("history") or []
    fits = [float(r["fitness"]) for r in c.proxy.values()]
    return {
        "proxy": float(run0["fitness"]) if run0 else nan,
        "last epoch": float(hist[-1]["fitness"]) if hist else nan,
        "loss sum": -loss_sum(_losses(run0)) if hist and _losses(run0) else nan,
        "loss EMA": -loss_ema(_losses(run0)) if hist and _losses(run0) else nan,
        "mean of seeds": sum(fits) / len(fits) if fits else nan,
        "GFLOPs": float(c.gflops),
        "params": float(c.params),
    }


@dataclass
class AuditReport:
    """Everything `nas audit` prints, as plain data."""

    study: str
    proxy_epochs: int
    reference_epochs: int
    seed: int
    seeds: int
    rows: list[dict]
    correlations: dict[str, Correlation]
    tau_per_epoch: list[dict]
    formed_epoch: int | None
    noise_sd: float
    seed_tau: float
    jobs_done: int = 0
    jobs_total: int = 0
    verdict: str = ""

    @property
    def n(self) -> int:
        """Candidates with both a seed-0 proxy run and a reference run."""
        return sum(1 for r in self.rows if r["reference"] is not None and r["proxy"] is not None)

    @property
    def finished(self) -> bool:
        return self.jobs_done >= self.jobs_total

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["correlations"] = {k: v.to_json() for k, v in self.correlations.items()}
        doc["n"] = self.n
        doc["finished"] = self.finished
        doc["noise"] = None if not math.isfinite(self.noise_sd) else 2 * self.noise_sd
        return _finite(doc)


def _finite(x: Any) -> Any:
    """nan/inf -> None, recursively (JSON has no nan)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def build_report(study: str, cands: list[CandidateRuns], *, proxy_epochs: int, reference_epochs: int, seed: int,
                 seeds: int, jobs_done: int = 0, jobs_total: int = 0, n_boot: int = 1000) -> AuditReport:
    """Correlations of every score with the reference, tau per proxy epoch, seed noise and the verdict."""
    rows = []
    for c in cands:
        sc = scores(c, seed)
        fits = [float(r["fitness"]) for _, r in sorted(c.proxy.items())]
        rows.append({"key": c.key, "label": c.label, "trial": c.trial, "baseline": c.baseline, "gflops": c.gflops,
                     "params": c.params, "proxy": c.proxy[seed]["fitness"] if seed in c.proxy else None,
                     "seeds": {str(s): float(r["fitness"]) for s, r in sorted(c.proxy.items())},
                     "mean": sc["mean of seeds"] if fits else None, "sd": seed_sd(fits),
                     "reference": float(c.reference["fitness"]) if c.reference else None})
    both = [c for c in cands if c.reference is not None and seed in c.proxy]
    ref = [float(c.reference["fitness"]) for c in both]
    table = [scores(c, seed) for c in both]
    correlations = {}
    for name in SCORES:
        pairs = [(t[name], r) for t, r in zip(table, ref, strict=True) if math.isfinite(t[name])]
        correlations[name] = correlate([p[0] for p in pairs], [p[1] for p in pairs], n_boot=n_boot, seed=seed)

    per_epoch = []
    for e in range(1, proxy_epochs + 1):
        pairs = [(float(c.proxy[seed]["history"][e - 1]["fitness"]), float(c.reference["fitness"])) for c in both
                 if len(c.proxy[seed].get("history") or []) >= e and "fitness" in c.proxy[seed]["history"][e - 1]]
        if len(pairs) >= 3:
            per_epoch.append({"epoch": e, "n": len(pairs), "tau": kendall_tau([p[0] for p in pairs],
                                                                               [p[1] for p in pairs])})
    formed = formed_epoch(per_epoch)

    all_seeds = list(range(seed, seed + seeds + 1))
    full = [c for c in cands if all(s in c.proxy for s in all_seeds)]
    noise = pooled_sd([[float(r["fitness"]) for r in c.proxy.values()] for c in cands])
    columns = [[float(c.proxy[s]["fitness"]) for c in full] for s in all_seeds] if len(full) >= 3 else []
    report = AuditReport(study, proxy_epochs, reference_epochs, seed, seeds, rows, correlations, per_epoch, formed,
                         noise, mean_pairwise_tau(columns), jobs_done, jobs_total)
    report.verdict = verdict(report)
    return report


def formed_epoch(per_epoch: list[dict], within: float = 0.1) -> int | None:
    """The first proxy epoch from which tau stays within `within` of the last epoch's tau."""
    valid = [p for p in per_epoch if math.isfinite(p["tau"])]
    if not valid:
        return None
    last = valid[-1]["tau"]
    epoch = valid[-1]["epoch"]
    for p in reversed(valid):
        if abs(p["tau"] - last) > within:
            break
        epoch = p["epoch"]
    return epoch


def _ci(c: Correlation) -> str:
    if not math.isfinite(c.tau_low):
        return f"τ {c.tau:.2f}"
    return f"τ {c.tau:.2f} [{c.tau_low:.2f}, {c.tau_high:.2f}]"


def verdict(r: AuditReport) -> str:
    """One line a user can act on: how far to trust the front, and the fitness difference that is noise."""
    c = r.correlations.get("proxy")
    if r.n < 3 or c is None or not math.isfinite(c.tau):
        return (f"not enough finished runs yet ({r.n} candidates with a reference, 3 needed): run the same "
                f"command again to continue")
    ref = f"the {r.reference_epochs}-epoch reference"
    doubts = []  # what keeps a high τ from meaning a trustworthy order
    if r.n < MIN_CANDIDATES:
        doubts.append(f"only {r.n} candidates were compared ({MIN_CANDIDATES} or more give τ a meaningful "
                      f"interval: --candidates {MIN_CANDIDATES})")
    if math.isfinite(r.seed_tau) and r.seed_tau < SEED_TAU:
        doubts.append(f"another seed reorders them (seed τ {r.seed_tau:.2f} < {SEED_TAU})")
    if c.tau >= GOOD_TAU and c.tau_low >= FAIR_TAU and not doubts:
        parts = [f"the proxy ranks like {ref} ({_ci(c)}): trust the order of the front"]
    elif c.tau >= GOOD_TAU and c.tau_low >= FAIR_TAU:
        parts = [f"the proxy agrees with {ref} ({_ci(c)}), but {' and '.join(doubts)}: trust the front's broad "
                 f"shape, not the order of close candidates"]
    elif c.tau >= FAIR_TAU:
        parts = [f"the proxy ranks only roughly like {ref} ({_ci(c)}): trust the front's broad shape, "
                 f"not the order of close candidates", *doubts]
    else:
        parts = [f"the proxy does not rank like {ref} ({_ci(c)}): do not trust the front's order"]
        if r.tau_per_epoch and len(r.tau_per_epoch) >= 2 and r.tau_per_epoch[-1]["tau"] > r.tau_per_epoch[0]["tau"]:
            parts.append("τ still rises with proxy epochs: search with more --epochs")
    g = r.correlations.get("GFLOPs")
    if g is not None and math.isfinite(g.tau) and g.tau >= c.tau:
        parts.append(f"GFLOPs alone rank as well (τ {g.tau:.2f})")
    better = [(r.correlations[k].tau, k) for k in ("mean of seeds", "last epoch", "loss sum", "loss EMA")
              if math.isfinite(r.correlations[k].tau) and r.correlations[k].tau >= c.tau + 0.1]
    if better:
        tau, name = max(better)
        parts.append(f"{name} ranks better (τ {tau:.2f})")
    if math.isfinite(r.noise_sd):
        parts.append(f"fitness differences below {2 * r.noise_sd:.3f} (2 x seed sd {r.noise_sd:.3f}) are noise: "
                     f"treat such candidates as ties")
    else:
        parts.append("seed noise unknown: audit with --seeds 1 or more")
    if not r.finished:
        parts.append(f"partial: {r.jobs_done}/{r.jobs_total} runs")
    return "; ".join(parts)


def plot(r: AuditReport, path: str | Path) -> Path:
    """PNG: proxy (mean of seeds, bars = seed range) against reference, labelled; tau per proxy epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = check_output(path, "--plot")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.6), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    rows = [row for row in r.rows if row["reference"] is not None and row["seeds"]]
    for row in rows:
        vals = list(row["seeds"].values())
        mean = sum(vals) / len(vals)
        ax.errorbar(mean, row["reference"], xerr=[[mean - min(vals)], [max(vals) - mean]], fmt="o", ms=5,
                    color="tab:orange" if row["baseline"] else "tab:blue", ecolor="0.6", capsize=2)
        ax.annotate(row["label"], (mean, row["reference"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    c = r.correlations["proxy"]
    ax.set_xlabel(f"proxy fitness ({r.proxy_epochs} epochs; mean and range over {r.seeds + 1} seeds)")
    ax.set_ylabel(f"reference fitness ({r.reference_epochs} epochs)")
    ax.set_title(f"proxy vs reference: τ {c.tau:.2f}, ρ {c.rho:.2f} (n={r.n})", fontsize=10)
    ax.grid(alpha=0.3)
    if r.tau_per_epoch:
        epochs = [p["epoch"] for p in r.tau_per_epoch]
        bx.plot(epochs, [p["tau"] for p in r.tau_per_epoch], "o-", label="proxy epoch")
        bx.set_xticks(epochs)
    g = r.correlations["GFLOPs"].tau
    if math.isfinite(g):
        bx.axhline(g, color="tab:red", ls="--", lw=1, label=f"GFLOPs alone ({g:.2f})")
    if math.isfinite(r.seed_tau):
        bx.axhline(r.seed_tau, color="tab:green", ls=":", lw=1, label=f"seed vs seed ({r.seed_tau:.2f})")
    bx.set_ylim(-1.05, 1.05)
    bx.set_xlabel("proxy epoch")
    bx.set_ylabel("Kendall τ against the reference")
    bx.legend(fontsize=7, loc="lower right")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
