"""Proxy fidelity: does the search's short proxy rank candidates like longer training? (`nas audit`)

Reference runs and repeated proxy seeds are stored as trials of an auxiliary study `<study>.audit` in the
same storage (resumable, shared by several workers); the report (Kendall tau, Spearman rho, seed noise,
a verdict) is computed from plain data. The summary it leaves on the study is nas.record's (`AuditSummary`,
`audit_summary(study)`), which other commands read; it is handed on here for nas.front until that reads it there.
"""

from nas.audit.report import SCORES, AuditReport, CandidateRuns, build_report
from nas.audit.run import AuditOptions, AuditResult, prepare, run_audit
from nas.audit.stats import kendall_tau, spearman_rho
from nas.record import SUMMARY_ATTR, AuditSummary, audit_summary

__all__ = ["SCORES", "SUMMARY_ATTR", "AuditOptions", "AuditReport", "AuditResult", "AuditSummary", "CandidateRuns",
           "audit_summary", "build_report", "kendall_tau", "prepare", "run_audit", "spearman_rho"]
