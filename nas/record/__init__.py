"""The records nas keeps in Optuna studies, typed, written and read only here (docs/CONTRACTS.md names them).

trial.py (a trial's record: `TrialRecord`, `read`, `write`, constraints, heartbeat),
study.py (the study record `StudyRecord` and the latency table as kept),
artifacts.py (a trial's long parts as artifacts: per-epoch history and model YAML),
audit.py (`AuditSummary` and the audit's job trials),
display.py (`describe`: a candidate's choices in one line).
Of nas the package imports only nas.errors, nas.lazy and nas.outcome (Outcome, CandidateFailed, handed on here):
callers hand in what it must not import (the artifact store, a model YAML's provenance header).
"""

from nas.record.artifacts import (
    HEADER_START,
    HISTORY_ARTIFACT,
    MODEL_YAML_ARTIFACT,
    missing_artifact,
    model_yaml_artifact,
    read_history,
    read_model_yaml,
    read_text,
    save_model_yaml,
    store_folder,
    trial_of,
    upload_text,
    write_history,
    write_model_yaml,
)
from nas.record.audit import (
    JOB_HISTORY_ATTR,
    JOB_INTERRUPTED,
    JOB_MODEL_ATTR,
    SUMMARY_ATTR,
    AuditSummary,
    audit_summary,
    enqueue_job,
    failed_for_good,
    interrupt_job,
    job_key,
    job_model_yaml,
    job_of,
    job_run,
    read_selection,
    skip_job,
    write_audit_of,
    write_audit_summary,
    write_job_run,
)
from nas.record.display import describe
from nas.record.study import (
    LATENCY_TABLE_ATTR,
    StudyRecord,
    latency_table,
    read_study,
    study_attrs,
    write_latency_table,
    write_study,
)
from nas.record.trial import (
    CONSTRAINTS_ATTR,
    HEARTBEAT_ATTR,
    INTERRUPTED,
    CandidateFailed,
    Outcome,
    TrialRecord,
    enqueue,
    enqueue_attrs,
    read,
    read_heartbeat,
    set_constraints,
    write,
    write_heartbeat,
)

__all__ = ["CONSTRAINTS_ATTR", "HEADER_START", "HEARTBEAT_ATTR", "HISTORY_ARTIFACT", "INTERRUPTED", "JOB_HISTORY_ATTR",
           "JOB_INTERRUPTED", "JOB_MODEL_ATTR", "LATENCY_TABLE_ATTR", "MODEL_YAML_ARTIFACT", "SUMMARY_ATTR",
           "AuditSummary", "CandidateFailed", "Outcome", "StudyRecord", "TrialRecord", "audit_summary", "describe",
           "enqueue", "enqueue_attrs", "enqueue_job", "failed_for_good", "interrupt_job", "job_key", "job_model_yaml",
           "job_of", "job_run", "latency_table", "missing_artifact", "model_yaml_artifact", "read", "read_heartbeat",
           "read_history", "read_model_yaml", "read_selection", "read_study", "read_text", "save_model_yaml",
           "set_constraints", "skip_job", "store_folder", "study_attrs", "trial_of", "upload_text", "write",
           "write_audit_of", "write_audit_summary", "write_heartbeat", "write_history", "write_job_run",
           "write_latency_table", "write_model_yaml", "write_study"]
