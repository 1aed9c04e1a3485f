"""Opening nas studies: create or resume one (directions, metric names, the study record), load one, list them.

The storage behind a URL is nas.storage.connect's; every failure is a NasError naming the URL and the fix.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import optuna
from optuna.storages import BaseStorage

from nas.errors import NasError
from nas.record import read_study, write_study
from nas.storage import heartbeat
from nas.storage.connect import resolve_storage
from nas.storage.urls import storage_label

DIRECTIONS = ("maximize", "minimize")
METRIC_NAMES = ["fitness", "GFLOPs"]
CREATE_RACE_WAIT = 3.0  # seconds a resuming process waits for a concurrent creator to write the attrs


def _as_storage(storage: str | BaseStorage | None, create: bool = True) -> BaseStorage:
    if storage is None or isinstance(storage, str):
        return resolve_storage(storage, create=create)
    return storage


def study_names(storage: str | BaseStorage | None) -> list[str]:
    """Names of the studies in a storage, sorted."""
    return sorted(optuna.study.get_all_study_names(_as_storage(storage, create=False)))


def create_or_resume(
    storage: str | BaseStorage | None,
    study_name: str,
    *,
    space_hash: str,
    attrs: dict[str, Any],
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Create the study (directions [maximize, minimize], metric names, user attrs) or resume it.

    Resuming checks that the study was made from the same search space (`space_hash`); two processes
    may call this at once. Stale RUNNING trials of journal storages are failed and queued for retry.
    """
    label = storage_label(storage)
    storage = _as_storage(storage)
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, directions=list(DIRECTIONS), sampler=sampler
        )
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        created = False

    if created:
        _write_study_attrs(study, attrs, space_hash)
    else:
        wanted = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
        if list(study.directions) != wanted:
            got = [d.name.lower() for d in study.directions]
            raise NasError(
                f"study {study_name!r} in {label} has directions {got}, not a nas study "
                "(maximize fitness, minimize GFLOPs); use another --study name"
            )
        existing = _wait_for_space_hash(study)
        if existing is None:  # made by something else, or its creator died before writing the attrs
            _write_study_attrs(study, attrs, space_hash, only_missing=True)
        elif existing != space_hash:
            space = read_study(study).space_path or "?"
            raise NasError(
                f"study {study_name!r} in {label} was searched with a different space "
                f"({space}, hash {str(existing)[:12]}; now {space_hash[:12]}); resume it with that space "
                f"or start a new study: --study {study_name}-2"
            )
    heartbeat.fail_dead_trials(study, one_process=label.startswith("sqlite"))  # SQLite: one process
    heartbeat.fail_stale_trials(study)
    return study


def _write_study_attrs(study: optuna.Study, attrs: dict[str, Any], space_hash: str, only_missing: bool = False) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if not study.metric_names:
            study.set_metric_names(METRIC_NAMES)
    write_study(study, attrs, space_hash, only_missing)


def _wait_for_space_hash(study: optuna.Study, timeout: float | None = None) -> str | None:
    """The study's space_hash, waiting briefly for a concurrent creator to write it."""
    deadline = time.monotonic() + (CREATE_RACE_WAIT if timeout is None else timeout)
    while True:
        value = read_study(study).space_hash
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def load_study(storage_url: str | BaseStorage | None = None, study_name: str | None = None) -> optuna.Study:
    """Load a study; with no name, the only study in the storage. NasError lists the studies otherwise."""
    label = storage_label(storage_url)
    storage = _as_storage(storage_url, create=False)
    names = sorted(optuna.study.get_all_study_names(storage))
    if not names:
        raise NasError(f"no studies in {label}; run `nas search` first or pass --storage URL of your study")
    if study_name is None:
        names = [n for n in names if not n.endswith(".audit")] or names  # `nas audit` runs beside their study
        if len(names) > 1:
            raise NasError(f"{label} holds {len(names)} studies ({', '.join(names)}); choose one with --study NAME")
        study_name = names[0]
    elif study_name not in names:
        raise NasError(f"no study {study_name!r} in {label}; existing: {', '.join(names)}")
    return optuna.load_study(study_name=study_name, storage=storage)


def load_nas_study(storage_url: str | BaseStorage | None = None, study_name: str | None = None) -> optuna.Study:
    """`load_study`, refusing a study that `nas search` did not make (its trials would read as nonsense)."""
    study = load_study(storage_url, study_name)
    if not read_study(study).made_by_nas:
        raise NasError(f"study {study.study_name!r} in {storage_label(storage_url)} was not made by `nas search` "
                       f"(it has no space_hash user attr), so nas cannot read its trials; choose a nas study with "
                       f"--study NAME, or browse this one with optuna-dashboard")
    return study
