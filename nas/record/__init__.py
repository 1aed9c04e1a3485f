"""The records nas keeps in Optuna studies, typed, written and read only here (docs/CONTRACTS.md names them).

trial.py (a trial's record: `TrialRecord`, `read`, `write`, constraints), study.py (the study record
`StudyRecord`), artifacts.py (a trial's long parts as artifacts: per-epoch history and model YAML),
audit.py (`AuditSummary`), display.py (`describe`: a candidate's choices in one line).
The package imports nothing of nas above nas.errors and nas.lazy: callers hand in what it must not import (the
artifact store, a model YAML's provenance header).
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
from nas.record.audit import SUMMARY_ATTR, AuditSummary, audit_summary
from nas.record.display import describe
from nas.record.study import StudyRecord, read_study, study_attrs
from nas.record.trial import (
    CONSTRAINTS_ATTR,
    INTERRUPTED,
    CandidateFailed,
    Outcome,
    TrialRecord,
    enqueue_attrs,
    read,
    set_constraints,
    write,
)

__all__ = ["CONSTRAINTS_ATTR", "HEADER_START", "HISTORY_ARTIFACT", "INTERRUPTED", "MODEL_YAML_ARTIFACT", "SUMMARY_ATTR",
           "AuditSummary", "CandidateFailed", "Outcome", "StudyRecord", "TrialRecord", "audit_summary", "describe",
           "enqueue_attrs", "missing_artifact", "model_yaml_artifact", "read", "read_history", "read_model_yaml",
           "read_study", "read_text", "save_model_yaml", "set_constraints", "store_folder", "study_attrs", "trial_of",
           "upload_text", "write", "write_history", "write_model_yaml"]
