"""What `nas audit` records on the audited study: the summary of its last finished audit (`AuditSummary`), which
other commands read (ties in export-best and nas pareto, the search's rungs)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from nas.record.trial import as_float

if TYPE_CHECKING:
    import optuna

SUMMARY_ATTR = "audit"  # study user attr holding the AuditSummary of the last finished audit


@dataclass
class AuditSummary:
    """What other commands need from a finished audit (stored as the study user attr `audit`)."""

    tau: float | None
    tau_low: float | None
    tau_high: float | None
    rho: float | None
    tau_gflops: float | None
    noise_sd: float | None  # pooled seed standard deviation of fitness
    noise: float | None  # the fitness difference that is noise: 2 x noise_sd
    seed_tau: float | None
    n_candidates: int
    proxy_epochs: int
    reference_epochs: int
    seeds: int
    verdict: str
    finished_at: str = ""
    formed_epoch: int | None = None  # the proxy epoch from which tau per epoch stays near its last value

    @classmethod
    def from_report(cls, r: Any) -> AuditSummary:
        """The summary of a finished nas.audit.report.AuditReport (non-finite numbers stored as None)."""
        c, g = r.correlations["proxy"], r.correlations["GFLOPs"]
        return cls(tau=as_float(c.tau), tau_low=as_float(c.tau_low), tau_high=as_float(c.tau_high),
                   rho=as_float(c.rho), tau_gflops=as_float(g.tau), noise_sd=as_float(r.noise_sd),
                   noise=as_float(2 * r.noise_sd), seed_tau=as_float(r.seed_tau), n_candidates=r.n,
                   proxy_epochs=r.proxy_epochs, reference_epochs=r.reference_epochs, seeds=r.seeds,
                   verdict=r.verdict, finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   formed_epoch=r.formed_epoch)

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, doc: Any) -> AuditSummary | None:
        if not isinstance(doc, dict):
            return None
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in doc.items() if k in names})
        except TypeError:
            return None


def audit_summary(study: optuna.Study) -> AuditSummary | None:
    """The last finished audit of a study (noise sd, tau, verdict), or None when it has none."""
    return AuditSummary.from_attr(study.user_attrs.get(SUMMARY_ATTR))


__all__ = ["SUMMARY_ATTR", "AuditSummary", "audit_summary"]
