"""Artifacts beside a study: the file-system artifact store, and text files attached to a trial or a study
(a trial's model YAML and per-epoch history, an audit's report and plot)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import NasError
from nas.storage.urls import journal_path, normalize_url, one_line, sqlite_path

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.trial import FrozenTrial

MODEL_YAML_ARTIFACT = "model-trial{number}.yaml"
HISTORY_ARTIFACT = "history-trial{number}.json"


def artifact_dir(storage_url: str | None = None) -> Path:
    """Artifact folder: `<db stem>-artifacts/` beside a SQLite/journal file, else `studies/artifacts/`."""
    url = normalize_url(storage_url)
    path = sqlite_path(url) or journal_path(url)
    if path is None:
        return Path("studies") / "artifacts"
    return path.parent / f"{path.stem}-artifacts"


def artifact_store(storage_url: str | None = None, base_path: str | Path | None = None) -> FileSystemArtifactStore:
    """The file-system artifact store kept beside the study database (folder created)."""
    from optuna.artifacts import FileSystemArtifactStore

    folder = Path(base_path) if base_path is not None else artifact_dir(storage_url)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NasError(f"cannot create the artifact folder {folder}: {one_line(e)}; choose a writable place") from None
    return FileSystemArtifactStore(folder)


def existing_store(
    storage_url: str | None = None, base_path: str | Path | None = None
) -> FileSystemArtifactStore | None:
    """The artifact store when its folder exists, else None (readers must not create folders)."""
    folder = Path(base_path) if base_path is not None else artifact_dir(storage_url)
    return artifact_store(storage_url, folder) if folder.is_dir() else None


def store_folder(store: FileSystemArtifactStore | None) -> str:
    """The folder a store reads (for messages)."""
    return "-" if store is None else str(getattr(store, "_base_path", store))


def _frozen(study: optuna.Study, trial: optuna.Trial | FrozenTrial | int) -> optuna.Trial | FrozenTrial:
    if isinstance(trial, int):
        found = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not found:
            raise NasError(f"study {study.study_name!r} has no trial {trial}")
        return found[0]
    return trial


def upload_text(
    study: optuna.Study,
    target: optuna.Study | optuna.Trial | FrozenTrial | int,
    filename: str,
    data: str | bytes,
    store: FileSystemArtifactStore,
    mimetype: str = "text/plain",
) -> str:
    """Attach `data` as the artifact `filename` to a running trial (object or number) or to the study itself;
    returns the artifact id. A finished trial refuses it (optuna's UpdateFinishedTrialError)."""
    import optuna
    from optuna.artifacts import upload_artifact

    owner = target if isinstance(target, optuna.Study) else _frozen(study, target)
    with tempfile.TemporaryDirectory(prefix="nas-artifact-") as tmp:
        path = Path(tmp) / filename
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=owner,
                               storage=study._storage, mimetype=mimetype)


def read_text(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial | int, filename: str, store: FileSystemArtifactStore
) -> str | None:
    """The text of a trial's artifact `filename` (the last upload whose file is present), or None."""
    from optuna.artifacts import get_all_artifact_meta

    target = _frozen(study, trial)
    metas = [m for m in get_all_artifact_meta(target, storage=study._storage) if m.filename == filename]
    for meta in reversed(metas):
        try:
            with store.open_reader(meta.artifact_id) as f:
                return f.read().decode("utf-8")
        except Exception:  # noqa: BLE001 - artifact file removed: try an older upload
            continue
    return None


def save_model_yaml(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial | int, text: str, store: FileSystemArtifactStore
) -> str:
    """Upload a trial's rendered model YAML as an artifact (`model-trial<N>.yaml`); returns the artifact id.

    `trial` is an optuna Trial, a FrozenTrial or a trial number of `study`.
    """
    number = _frozen(study, trial).number
    return upload_text(study, trial, MODEL_YAML_ARTIFACT.format(number=number), text, store, "text/yaml")


def read_model_yaml(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial | int, store: FileSystemArtifactStore
) -> str | None:
    """The model YAML artifact of a trial (the last one uploaded), or None when it has none."""
    number = _frozen(study, trial).number
    return read_text(study, trial, MODEL_YAML_ARTIFACT.format(number=number), store)
