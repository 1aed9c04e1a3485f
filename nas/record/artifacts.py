"""The long parts of a trial's record, kept as trial artifacts in a file-system artifact store: its per-epoch
history (`history-trial<N>.json`) and its rendered model YAML (`model-trial<N>.yaml`), read back with the user
attrs of studies made before the artifacts as the fallback; and any text or bytes attached to a trial or a study.

Every function takes the artifact store (nas.storage.artifact_store / existing_store opens it beside the study).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import NasError
from nas.lazy import lazy
from nas.record.trial import read, write

optuna = lazy("optuna")
optuna_artifacts = lazy("optuna.artifacts")

if TYPE_CHECKING:
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.trial import FrozenTrial

MODEL_YAML_ARTIFACT = "model-trial{number}.yaml"
HISTORY_ARTIFACT = "history-trial{number}.json"
HEADER_START = "# nas export-best"  # first words of the provenance header heading a model YAML (nas.export.header)


def store_folder(store: FileSystemArtifactStore | None) -> str:
    """The folder a store reads (for messages)."""
    return "-" if store is None else str(getattr(store, "_base_path", store))


def trial_of(study: optuna.Study, trial: optuna.Trial | FrozenTrial | int) -> optuna.Trial | FrozenTrial:
    """The trial itself, given it or its number; NasError for a number the study does not have."""
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
    owner = target if isinstance(target, optuna.Study) else trial_of(study, target)
    with tempfile.TemporaryDirectory(prefix="nas-artifact-") as tmp:
        path = Path(tmp) / filename
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        return optuna_artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=owner,
                               storage=study._storage, mimetype=mimetype)


def read_text(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial | int, filename: str, store: FileSystemArtifactStore
) -> str | None:
    """The text of a trial's artifact `filename` (the last upload whose file is present), or None."""
    target = trial_of(study, trial)
    metas = optuna_artifacts.get_all_artifact_meta(target, storage=study._storage)
    metas = [m for m in metas if m.filename == filename]
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
    number = trial_of(study, trial).number
    return upload_text(study, trial, MODEL_YAML_ARTIFACT.format(number=number), text, store, "text/yaml")


def model_yaml_artifact(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial | int, store: FileSystemArtifactStore
) -> str | None:
    """The model YAML artifact of a trial as uploaded, header and all (the last one), or None when it has none."""
    number = trial_of(study, trial).number
    return read_text(study, trial, MODEL_YAML_ARTIFACT.format(number=number), store)


def write_history(trial: optuna.Trial, history: list[dict], store: FileSystemArtifactStore | None) -> None:
    """Keep a trial's per-epoch records as the artifact `history-trial<N>.json` (the user attr when the
    artifact store cannot take it, so nothing is lost)."""
    if store is not None:
        try:
            upload_text(trial.study, trial, HISTORY_ARTIFACT.format(number=trial.number), json.dumps(history),
                        store, "application/json")
            return
        except OSError:
            pass
    write(trial, history=history)


def write_model_yaml(trial: optuna.Trial, text: str, store: FileSystemArtifactStore, header: str = "") -> None:
    """Upload a trial's rendered model YAML as `model-trial<N>.yaml` below `header` (the caller's provenance
    comment lines, as `nas export-best` heads its output; each starts with '#'), or keep it as the `model_yaml`
    user attr when the artifact store cannot take it, so a scored model is never lost."""
    try:
        save_model_yaml(trial.study, trial, header + text, store)
    except OSError:
        write(trial, model_yaml=text)


def read_history(study: optuna.Study, t: FrozenTrial, store: FileSystemArtifactStore | None) -> list[dict]:
    """A trial's per-epoch records: its history artifact, else the `history` user attr (studies made before
    the artifact), else those of the trial whose score it reused; [] when none is readable."""
    seen: set[int] = set()
    while t.number not in seen:
        seen.add(t.number)
        if store is not None:
            text = read_text(study, t, HISTORY_ARTIFACT.format(number=t.number), store)
            try:
                history = json.loads(text) if text else None
            except ValueError:
                history = None
            if isinstance(history, list):
                return history
        r = read(t)
        if r.history or r.reused_from is None:
            return r.history
        twins = [u for u in study.get_trials(deepcopy=False) if u.number == r.reused_from]
        if not twins:
            return []
        t = twins[0]
    return []


def read_model_yaml(study: optuna.Study, t: FrozenTrial, store: FileSystemArtifactStore | None) -> str | None:
    """A trial's rendered model YAML without its provenance header: its `model-trial<N>.yaml` artifact, else
    the `model_yaml` user attr (studies made before the artifact); None when neither is readable."""
    text = model_yaml_artifact(study, t, store) if store is not None else None
    if text and text.startswith(HEADER_START):  # written by the search: drop the header (the YAML starts `nc:`)
        lines = text.splitlines(keepends=True)
        while lines and lines[0].startswith("#"):
            lines.pop(0)
        text = "".join(lines)
    if text and text.strip():
        return text
    old = read(t).model_yaml
    return old if old and old.strip() else None


def missing_artifact(study: optuna.Study, t: FrozenTrial, what: str, store: FileSystemArtifactStore | None) -> str:
    """The message for a trial whose artifact is not here: where it was looked for and how to get it."""
    host = read(t).host
    where = f"the artifact folder {store_folder(store)}" if store is not None else "no artifact folder here"
    ran = f" (trial {t.number} ran on {host})" if host else ""
    return (f"trial {t.number} of study {study.study_name!r} has no stored {what} readable here: {where}{ran}; "
            f"artifacts stay "
            f"on the machine that ran the search: run this command there, or copy its artifact folder here "
            f"(see `nas dashboard --artifact-dir`)")


__all__ = ["HEADER_START", "HISTORY_ARTIFACT", "MODEL_YAML_ARTIFACT", "missing_artifact", "model_yaml_artifact",
           "read_history", "read_model_yaml", "read_text", "save_model_yaml", "store_folder", "trial_of",
           "upload_text", "write_history", "write_model_yaml"]
