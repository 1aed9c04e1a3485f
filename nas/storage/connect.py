"""A storage URL -> an Optuna storage, created or only opened (`resolve_storage`).

Storage kinds:

- SQLite (`sqlite:///studies/nas.db`, the default): one process only. RDBStorage with Optuna's heartbeat.
- A server database (`postgresql://...`, `mysql://...` or any SQLAlchemy URL): many processes and
  machines. RDBStorage with Optuna's heartbeat.
- A journal file (`journal:studies/nas.journal`, or a path ending `.journal`/`.log`): many processes on
  one machine or a shared file system; nas keeps its own heartbeat (see nas.storage.heartbeat).

Every failure is a NasError naming the (password-masked) URL and the likely fix.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy import event

from nas.errors import NasError
from nas.storage import heartbeat
from nas.storage.urls import (
    DEFAULT_STORAGE,
    LEGACY_DEFAULT,
    STORAGE_FORMS,
    journal_path,
    mask_url,
    normalize_url,
    one_line,
    sqlite_path,
)

CONNECT_TIMEOUT = 5  # seconds to reach a database server
SCHEMA_RACE_RETRIES = 20  # opens of a new server database that may meet another process creating its tables


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
    path = journal_path(url)
    assert path is not None
    if not create and not path.exists():
        if url == DEFAULT_STORAGE:
            legacy = LEGACY_DEFAULT.removeprefix("sqlite:///")
            older = (f"; {legacy} holds studies of nas before the journal became the default: pass --storage "
                     f"{LEGACY_DEFAULT}") if Path(legacy).is_file() else ""
            raise NasError(f"no study journal at {path} (the default storage); run `nas search` first or pass "
                           f"--storage URL{older}")
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
        reason = one_line(e)
        if isinstance(e, PermissionError):
            fix = "choose a writable path"
        elif isinstance(e, (ValueError, UnicodeDecodeError)):
            fix = "the file is not an Optuna journal; choose another path"
        else:
            fix = "check the path"
        raise NasError(f"cannot open journal storage {url}: {reason}; {fix}") from None


def _check_journal_head(path: Path) -> None:
    """ValueError unless the file is empty or starts with an Optuna journal record."""
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
            raise NasError(f"cannot create the folder for {masked}: {one_line(e)}; choose a writable path") from None
        created.note_file(db_file)
    elif url.startswith(("postgresql", "mysql", "mariadb")):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        storage = _open_rdb(url, engine_kwargs)
        if db_file is not None:
            _fast_sqlite(storage)
        return storage
    except Exception as e:  # noqa: BLE001 - drivers raise many types; all become one line
        created.undo()
        raise NasError(f"cannot open storage {masked}: {one_line(e)}; {_rdb_fix(url, e)}") from None


def _open_rdb(url: str, engine_kwargs: dict[str, Any]) -> BaseStorage:
    """Optuna's RDBStorage with nas's heartbeat. Several processes opening a new server database at once race
    to create Optuna's tables (PostgreSQL: duplicate key on pg_type; MySQL: 1050 table already exists; both:
    a duplicate version_info row): such an error means another process is creating the schema, so wait and
    open again, when the tables are there."""
    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat.HEARTBEAT_INTERVAL,
                    grace_period=heartbeat.GRACE_PERIOD,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=heartbeat.MAX_RETRY),
                )
        except Exception as e:
            if attempt == SCHEMA_RACE_RETRIES or not is_schema_race(e):
                raise
            time.sleep(0.1 * (attempt + 1) + random.random() * 0.1)
    raise AssertionError("unreachable")


def is_schema_race(e: BaseException) -> bool:
    """True for the errors a concurrent creation of the same tables, types or rows raises."""
    text = f"{e} {getattr(e, 'orig', '')}".lower()
    return (type(e).__name__ == "IntegrityError" or "already exists" in text or "duplicate key" in text
            or "duplicate entry" in text)


def _fast_sqlite(storage: BaseStorage) -> None:
    """WAL journal with synchronous=NORMAL: a commit no longer waits for an fsync (a trial writes dozens of
    attributes), yet a committed trial survives a crash or SIGKILL of the process; only a power cut can
    lose the last commits."""
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
        driver = "'psycopg[binary]'" if "postgres" in url else "pymysql" if "mysql" in url else "the database driver"
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


__all__ = ["CONNECT_TIMEOUT", "SCHEMA_RACE_RETRIES", "is_schema_race", "resolve_storage"]
