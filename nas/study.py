"""Study storage and records: storage URLs, create/resume, heartbeats, artifacts, feasibility, Pareto front.

Storage kinds (see `resolve_storage`):

- SQLite (`sqlite:///studies/nas.db`, the default): one process only. RDBStorage with Optuna's heartbeat.
- A server database (`postgresql://...`, `mysql://...` or any SQLAlchemy URL): many processes and
  machines. RDBStorage with Optuna's heartbeat.
- A journal file (`journal:studies/nas.journal`, or a path ending `.journal`/`.log`): many processes on
  one machine or a shared file system. Optuna 5's JournalStorage has no heartbeat, so nas keeps its own:
  `trial_heartbeat` stamps the trial's system attr `nas:heartbeat`, `fail_stale_trials` fails RUNNING trials
  whose stamp is older than the grace period and queues a retry.

Optuna's own heartbeat runs only inside `study.optimize`; `trial_heartbeat` covers ask/tell loops for
both kinds, so an objective may always wrap its body in it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

DEFAULT_STORAGE = "sqlite:///studies/nas.db"
DIRECTIONS = ("maximize", "minimize")
METRIC_NAMES = ["fitness", "GFLOPs"]

# seconds between heartbeats of a running trial, and silence after which it is failed (and retried);
# the environment variables exist for tests that kill a worker and should not wait a minute
HEARTBEAT_INTERVAL = int(os.environ.get("NAS_HEARTBEAT_INTERVAL", 20))
GRACE_PERIOD = int(os.environ.get("NAS_GRACE_PERIOD", 60))
MAX_RETRY = 2  # retries of a trial whose process died
CONNECT_TIMEOUT = 5  # seconds to reach a database server
HEARTBEAT_ATTR = "nas:heartbeat"  # trial system attr (journal storages): time.time() of the last beat
MODEL_YAML_ARTIFACT = "model-trial{number}.yaml"
CREATE_RACE_WAIT = 3.0  # seconds a resuming process waits for a concurrent creator to write the attrs

STORAGE_FORMS = (
    "sqlite:///studies/nas.db, journal:studies/nas.journal, "
    "postgresql://user:pass@host:5432/db, mysql://user:pass@host:3306/db"
)


# ----------------------------------------------------------------------------------------------- URLs


def _is_journal_text(url: str) -> bool:
    if url.startswith("journal:"):
        return True
    return "://" not in url and url.endswith((".journal", ".log"))


def normalize_url(url: str | None) -> str:
    """The storage URL nas uses: default for None, `journal:PATH` for journal files, explicit drivers."""
    if url is None or not str(url).strip():
        return DEFAULT_STORAGE
    url = str(url).strip()
    if _is_journal_text(url):
        path = url[len("journal:") :] if url.startswith("journal:") else url
        if path.startswith("//"):  # journal:///abs/path
            path = path[2:]
        if not path:
            raise NasError(f"--storage {url!r} names no journal file; e.g. journal:studies/nas.journal")
        return f"journal:{path}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise NasError(f"--storage {url!r} is not a storage URL; accepted forms: {STORAGE_FORMS}")
    if scheme in ("mysql", "mariadb"):
        scheme = "mysql+pymysql"
    elif scheme in ("postgres", "postgresql"):
        scheme = "postgresql+psycopg2" if _has_module("psycopg2") and not _has_module("psycopg") else "postgresql"
    return f"{scheme}://{rest}"


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def mask_url(url: str | None) -> str:
    """The URL with any password replaced by ***, safe to print."""
    url = normalize_url(url)
    if url.startswith("journal:"):
        return url
    return re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", url)


def is_sqlite(url: str | None) -> bool:
    """True for SQLite URLs (including the default storage)."""
    return normalize_url(url).startswith("sqlite")


def is_journal(url: str | None) -> bool:
    """True for journal-file storages (`journal:PATH`, `*.journal`, `*.log`)."""
    return normalize_url(url).startswith("journal:")


def journal_path(url: str | None) -> Path | None:
    """The journal file of a journal storage URL, else None."""
    url = normalize_url(url)
    return Path(url[len("journal:") :]) if url.startswith("journal:") else None


def sqlite_path(url: str | None) -> Path | None:
    """The database file of a SQLite URL (None for in-memory databases and other kinds)."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return None
    rest = url.split("://", 1)[1]
    if not rest.startswith("/"):
        return None
    path = rest[1:].split("?", 1)[0]
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return Path(path)


def refuse_sqlite_with_workers(url: str | None, workers: int) -> None:
    """NasError when several worker processes would share one SQLite file."""
    if workers > 1 and is_sqlite(url):
        raise NasError(
            f"--workers {workers} cannot share the SQLite storage {mask_url(url)}: "
            "SQLite is for one process; "
            "use a journal file (--storage journal:studies/nas.journal) or a server database "
            "(--storage postgresql://user:pass@host/db or mysql://user:pass@host/db)"
        )


# -------------------------------------------------------------------------------------------- storage


def resolve_storage(url: str | None = None, *, create: bool = True) -> BaseStorage:
    """Open the optuna storage behind a URL (None -> `DEFAULT_STORAGE`), with heartbeats configured.

    With `create=False` a missing SQLite or journal file is an error instead of a new empty study file.
    Any failure raises NasError naming the (password-masked) URL and the likely fix, and leaves no new
    files or folders behind.
    """
    url = normalize_url(url)
    if url.startswith("journal:"):
        return _journal_storage(url, create)
    if url.startswith("sqlite") and sqlite_path(url) is None:
        raise NasError(f"--storage {mask_url(url)} is an in-memory SQLite database, which loses the study when "
                       f"the process ends; name a file, e.g. sqlite:///studies/nas.db")
    return _rdb_storage(url, create)


class _Created:
    """Remembers the folders/files a storage opening created, to remove them if it fails."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def mkdir(self, folder: Path) -> None:
        missing = []
        for p in [folder, *folder.parents]:
            if p.exists():
                break
            missing.append(p)
        folder.mkdir(parents=True, exist_ok=True)
        self.paths.extend(missing)  # deepest first

    def note_file(self, path: Path) -> None:
        if not path.exists():
            self.paths.insert(0, path)

    def undo(self) -> None:
        for p in self.paths:
            with contextlib.suppress(OSError):
                if p.is_dir():
                    p.rmdir()
                else:
                    p.unlink()
                    for extra in (Path(f"{p}-journal"), Path(f"{p}-wal"), Path(f"{p}-shm")):
                        if extra.exists():
                            extra.unlink()


def _journal_storage(url: str, create: bool) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = journal_path(url)
    assert path is not None
    if not create and not path.exists():
        raise NasError(f"no journal file at {path} ({url}); run `nas search --storage {url}` first or fix the path")
    if path.exists() and path.is_dir():
        raise NasError(f"journal storage {url}: {path} is a folder; name a file, e.g. journal:{path}/nas.journal")
    created = _Created()
    try:
        created.mkdir(path.parent if str(path.parent) else Path("."))
        created.note_file(path)
        _check_journal_head(path)
        storage = JournalStorage(JournalFileBackend(str(path)))
        storage.get_all_studies()  # replays the log: fails on a corrupt journal
        return storage
    except Exception as e:  # noqa: BLE001 - any failure becomes one line naming the file
        created.undo()
        reason = _one_line(e)
        if isinstance(e, PermissionError):
            fix = "choose a writable path"
        elif isinstance(e, (ValueError, UnicodeDecodeError)):
            fix = "the file is not an Optuna journal; choose another path"
        else:
            fix = "check the path"
        raise NasError(f"cannot open journal storage {url}: {reason}; {fix}") from None


def _check_journal_head(path: Path) -> None:
    """ValueError unless the file is empty or starts with an Optuna journal record."""
    import json

    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb") as f:
        head = f.readline(1 << 20)
    try:
        record = json.loads(head)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        raise ValueError(f"{path} does not start with an Optuna journal record")


def _rdb_storage(url: str, create: bool) -> BaseStorage:
    import optuna

    masked = mask_url(url)
    created = _Created()
    engine_kwargs: dict[str, Any] = {}
    db_file = sqlite_path(url)
    if db_file is not None:
        if not create and not db_file.exists():
            raise NasError(f"no study database at {db_file} ({masked}); run `nas search` first or pass --storage URL")
        if db_file.exists() and db_file.is_dir():
            raise NasError(f"storage {masked}: {db_file} is a folder; name a database file")
        try:
            created.mkdir(db_file.parent if str(db_file.parent) else Path("."))
        except OSError as e:
            raise NasError(f"cannot create the folder for {masked}: {_one_line(e)}; choose a writable path") from None
        created.note_file(db_file)
    elif url.startswith(("postgresql", "mysql", "mariadb")):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
        if db_file is not None:
            _fast_sqlite(storage)
        return storage
    except Exception as e:  # noqa: BLE001 - drivers raise many types; all become one line
        created.undo()
        raise NasError(f"cannot open storage {masked}: {_one_line(e)}; {_rdb_fix(url, e)}") from None


def _fast_sqlite(storage: BaseStorage) -> None:
    """WAL journal with synchronous=NORMAL: a commit no longer waits for an fsync (a trial writes dozens of
    attributes), yet a committed trial survives a crash or SIGKILL of the process; only a power cut can
    lose the last commits."""
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # reconnect with the pragmas


def _rdb_fix(url: str, e: BaseException) -> str:
    text = f"{e} {getattr(e, 'orig', '')}".lower()
    name = type(e).__name__
    if isinstance(e, (ImportError, ModuleNotFoundError)) or "no module named" in text:
        driver = "psycopg2-binary" if "postgres" in url else "pymysql" if "mysql" in url else "the database driver"
        return f"install the driver: pip install {driver}"
    if name in ("ArgumentError", "NoSuchModuleError") or "could not parse" in text:
        return f"accepted forms: {STORAGE_FORMS}"
    if "does not exist" in text or "unknown database" in text:
        db = url.rsplit("/", 1)[-1].split("?", 1)[0]
        return f"create the database first (CREATE DATABASE {db};) or name an existing one"
    if "authentication" in text or "access denied" in text or "password" in text:
        return "check the user name and password in the URL"
    if (
        "refused" in text
        or "timeout" in text
        or "timed out" in text
        or "could not connect" in text
        or "can't connect" in text
        or "could not translate host" in text
        or "name or service" in text
    ):
        return "is the database server running and reachable at that host and port?"
    if "not a database" in text or "file is encrypted" in text:
        return "the file is not an SQLite database; choose another path"
    if "unable to open database" in text or "readonly" in text or "read-only" in text:
        return "choose a writable path"
    if "optuna storage upgrade" in text or "schema" in text:
        return f"upgrade it: optuna storage upgrade --storage {mask_url(url)}"
    return "check the URL and the server"


def _one_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e) or type(e).__name__
    text = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    text = re.sub(r"\(Background on this error.*$", "", text).strip()
    return text[:300]


# ------------------------------------------------------------------------------------------ studies


def _as_storage(storage: str | BaseStorage | None, create: bool = True) -> BaseStorage:
    if storage is None or isinstance(storage, str):
        return resolve_storage(storage, create=create)
    return storage


def storage_label(storage: str | BaseStorage | None) -> str:
    """A printable name for a storage URL or object (password masked)."""
    if storage is None or isinstance(storage, str):
        return mask_url(storage)
    url = getattr(storage, "url", None) or getattr(getattr(storage, "_backend", None), "_file_path", None)
    if url is None:
        return type(storage).__name__
    return mask_url(str(url)) if "://" in str(url) else f"journal:{url}"


def study_names(storage: str | BaseStorage | None) -> list[str]:
    """Names of the studies in a storage, sorted."""
    import optuna

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
    import optuna

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
        existing = _wait_for_attr(study, "space_hash")
        if existing is None:  # made by something else, or its creator died before writing the attrs
            _write_study_attrs(study, attrs, space_hash, only_missing=True)
        elif existing != space_hash:
            space = study.user_attrs.get("space_path", "?")
            raise NasError(
                f"study {study_name!r} in {label} was searched with a different space "
                f"({space}, hash {str(existing)[:12]}; now {space_hash[:12]}); resume it with that space "
                f"or start a new study: --study {study_name}-2"
            )
    fail_stale_trials(study)
    return study


def _write_study_attrs(study: optuna.Study, attrs: dict[str, Any], space_hash: str, only_missing: bool = False) -> None:
    import optuna

    present = study.user_attrs if only_missing else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if not study.metric_names:
            study.set_metric_names(METRIC_NAMES)
    for key, value in attrs.items():
        if key != "space_hash" and key not in present:
            study.set_user_attr(key, value)
    study.set_user_attr("space_hash", space_hash)  # last: its presence means the rest is written


def _wait_for_attr(study: optuna.Study, key: str, timeout: float | None = None) -> Any:
    """A study user attr, waiting briefly for a concurrent creator to write it."""
    deadline = time.monotonic() + (CREATE_RACE_WAIT if timeout is None else timeout)
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def load_study(storage_url: str | BaseStorage | None = None, study_name: str | None = None) -> optuna.Study:
    """Load a study; with no name, the only study in the storage. NasError lists the studies otherwise."""
    import optuna

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


# ---------------------------------------------------------------------------------------- heartbeats


def _uses_own_heartbeat(storage: BaseStorage) -> bool:
    from optuna.storages import JournalStorage

    return isinstance(storage, JournalStorage)


@contextlib.contextmanager
def trial_heartbeat(trial: optuna.Trial, interval: float = HEARTBEAT_INTERVAL) -> Iterator[None]:
    """Beat for a running trial while the block runs (journal storages; RDB storages outside optimize).

    Inside `study.optimize` an RDB storage already beats; beating twice is harmless.
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = trial.storage
    trial_id = trial._trial_id
    if _uses_own_heartbeat(storage):

        def beat() -> None:
            storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
    elif is_heartbeat_enabled(storage):

        def beat() -> None:
            storage.record_heartbeat(trial_id)
    else:
        yield
        return

    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                beat()
            except Exception:  # noqa: BLE001 - the trial finished or the storage went away: stop beating
                return
            if stop.wait(interval):
                return

    beat()
    thread = threading.Thread(target=loop, name=f"nas-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_stale_trials(study: optuna.Study, grace_period: float = GRACE_PERIOD) -> list[int]:
    """Fail RUNNING trials whose process stopped beating and queue retries; returns their numbers.

    Journal storages: trials carrying `nas:heartbeat` older than `grace_period` (trials that never beat
    are left alone). RDB storages: Optuna's own sweep (which `study.optimize` also runs before each trial).
    """
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if not _uses_own_heartbeat(storage):
            before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
            optuna.storages.fail_stale_trials(study)
            after = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            return sorted(t.number for t in after if t.number not in before)

        now = time.time()
        failed = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            last = t.system_attrs.get(HEARTBEAT_ATTR)
            if last is None or now - float(last) <= grace_period:
                continue
            try:
                if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    failed.append(t._trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another process got there first
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
        numbers = []
        for trial_id in failed:
            frozen = storage.get_trial(trial_id)
            retry(study, frozen)
            numbers.append(frozen.number)
        return sorted(numbers)


# ----------------------------------------------------------------------------------------- artifacts


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
        raise NasError(f"cannot create the artifact folder {folder}: {_one_line(e)}; choose a writable place") from None
    return FileSystemArtifactStore(folder)


def _frozen(study: optuna.Study, trial: optuna.Trial | FrozenTrial | int) -> optuna.Trial | FrozenTrial:
    if isinstance(trial, int):
        found = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not found:
            raise NasError(f"study {study.study_name!r} has no trial {trial}")
        return found[0]
    return trial


def save_model_yaml(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial | int, text: str, store: FileSystemArtifactStore
) -> str:
    """Upload a trial's rendered model YAML as an artifact (`model-trial<N>.yaml`); returns the artifact id.

    `trial` is an optuna Trial, a FrozenTrial or a trial number of `study`.
    """
    from optuna.artifacts import upload_artifact

    target = _frozen(study, trial)
    with tempfile.TemporaryDirectory(prefix="nas-artifact-") as tmp:
        path = Path(tmp) / MODEL_YAML_ARTIFACT.format(number=target.number)
        path.write_text(text, encoding="utf-8")
        return upload_artifact(
            artifact_store=store,
            file_path=str(path),
            study_or_trial=target,
            storage=study._storage,
            mimetype="text/yaml",
        )


def read_model_yaml(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial | int, store: FileSystemArtifactStore
) -> str | None:
    """The model YAML artifact of a trial (the last one uploaded), or None when it has none."""
    from optuna.artifacts import get_all_artifact_meta

    target = _frozen(study, trial)
    name = MODEL_YAML_ARTIFACT.format(number=target.number)
    metas = [m for m in get_all_artifact_meta(target, storage=study._storage) if m.filename == name]
    if not metas:
        return None
    for meta in reversed(metas):
        try:
            with store.open_reader(meta.artifact_id) as f:
                return f.read().decode("utf-8")
        except Exception:  # noqa: BLE001 - artifact file removed: try an older upload
            continue
    return None


# ------------------------------------------------------------------------------------ Pareto front


def is_feasible(trial: FrozenTrial) -> bool:
    """COMPLETE with two values, every constraint <= 0 and not marked over budget."""
    from optuna.trial import TrialState

    if trial.state != TrialState.COMPLETE or trial.values is None or len(trial.values) < 2:
        return False
    if trial.user_attrs.get("over_budget"):
        return False
    return all(float(v) <= 0.0 for v in trial.constraints.values())


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when (fitness, GFLOPs) a dominates b: fitness >= and GFLOPs <=, strictly better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_front(study_or_trials: optuna.Study | Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """Feasible complete trials not dominated in (fitness max, GFLOPs min), ordered by GFLOPs then trial.

    Trials with equal values are all kept (none dominates the other).
    """
    trials = study_or_trials.get_trials(deepcopy=False) if hasattr(study_or_trials, "get_trials") else study_or_trials
    feasible = [t for t in trials if is_feasible(t)]
    # Sorting by GFLOPs asc, fitness desc makes one pass enough: a point is on the front when its
    # fitness beats every point with lower GFLOPs (or equals the best at equal GFLOPs and fitness).
    feasible.sort(key=lambda t: (t.values[1], -t.values[0], t.number))
    front: list[FrozenTrial] = []
    for t in feasible:
        if not any(dominates(f.values, t.values) for f in front):
            front.append(t)
    return front


__all__ = [
    "DEFAULT_STORAGE",
    "artifact_dir",
    "artifact_store",
    "create_or_resume",
    "dominates",
    "fail_stale_trials",
    "HEARTBEAT_ATTR",
    "is_feasible",
    "is_journal",
    "is_sqlite",
    "load_study",
    "mask_url",
    "normalize_url",
    "pareto_front",
    "read_model_yaml",
    "refuse_sqlite_with_workers",
    "resolve_storage",
    "save_model_yaml",
    "study_names",
    "trial_heartbeat",
]
