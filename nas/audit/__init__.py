"""Proxy fidelity: does the search's short proxy rank candidates like longer training? (`nas audit`)

Reference runs and repeated proxy seeds are stored as trials of an auxiliary study `<study>.audit` in the
same storage (resumable, shared by several workers); the report (Kendall tau, Spearman rho, seed noise,
a verdict) is computed from plain data. The summary it leaves on the study is nas.record's (`AuditSummary`,
`audit_summary(study)`), which other commands read from there.
"""

from nas.audit.report import SCORES, AuditReport, CandidateRuns, build_report
from nas.audit.run import AuditOptions, AuditResult, prepare, run_audit
from nas.audit.stats import kendall_tau, spearman_rho

__all__ = ["SCORES", "AuditOptions", "AuditReport", "AuditResult", "CandidateRuns", "build_report", "kendall_tau",
           "prepare", "run_audit", "spearman_rho"]
