"""Artifacts beside a study: where its file-system artifact store lives, opened for writing or, when its folder
exists, for reading. What goes in it (a trial's model YAML and per-epoch history, an audit's report and plot) is
written and read by nas.record.artifacts."""

from __future__ import annotations

from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore

from nas.errors import NasError
from nas.storage.urls import journal_path, normalize_url, one_line, sqlite_path


def artifact_dir(storage_url: str | None = None) -> Path:
    """Artifact folder: `<db stem>-artifacts/` beside a SQLite/journal file, else `studies/artifacts/`."""
    url = normalize_url(storage_url)
    path = sqlite_path(url) or journal_path(url)
    if path is None:
        return Path("studies") / "artifacts"
    return path.parent / f"{path.stem}-artifacts"


def artifact_store(storage_url: str | None = None, base_path: str | Path | None = None) -> FileSystemArtifactStore:
    """The file-system artifact store kept beside the study database (folder created)."""
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
