"""Proxy fidelity: does the search's short proxy rank candidates like longer training? (`nas audit`)

Reference runs and repeated proxy seeds are stored as trials of an auxiliary study `<study>.audit` in the
same storage (resumable, shared by several workers); the report (Kendall tau, Spearman rho, seed noise,
a verdict) is computed from plain data. Other commands read `audit_summary(study)`.
"""

from nas.audit.report import SCORES, AuditReport, AuditSummary, CandidateRuns, build_report
from nas.audit.run import SUMMARY_ATTR, AuditOptions, AuditResult, audit_summary, prepare, run_audit
from nas.audit.stats import kendall_tau, spearman_rho

__all__ = ["SCORES", "SUMMARY_ATTR", "AuditOptions", "AuditReport", "AuditResult", "AuditSummary", "CandidateRuns",
           "audit_summary", "build_report", "kendall_tau", "prepare", "run_audit", "spearman_rho"]
