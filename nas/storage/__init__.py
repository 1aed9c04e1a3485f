"""Study storage by concern: URLs (urls), opening a storage (connect) and studies (open), heartbeats and dead
trials (heartbeat), artifacts beside the study (artifacts)."""

from nas.storage.artifacts import artifact_dir, artifact_store, existing_store
from nas.storage.connect import resolve_storage
from nas.storage.heartbeat import (
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    fail_dead_trials,
    fail_stale_trials,
    trial_heartbeat,
)
from nas.storage.open import create_or_resume, load_nas_study, load_study, study_names
from nas.storage.urls import (
    DEFAULT_STORAGE,
    is_journal,
    is_sqlite,
    journal_path,
    mask_url,
    normalize_url,
    refuse_sqlite_with_workers,
    sqlite_path,
    storage_label,
)

__all__ = [
    "DEFAULT_STORAGE", "GRACE_PERIOD", "HEARTBEAT_INTERVAL", "artifact_dir", "artifact_store",
    "create_or_resume", "existing_store", "fail_dead_trials", "fail_stale_trials", "is_journal", "is_sqlite",
    "journal_path", "load_nas_study", "load_study", "mask_url", "normalize_url", "refuse_sqlite_with_workers",
    "resolve_storage", "sqlite_path", "storage_label", "study_names", "trial_heartbeat",
]
