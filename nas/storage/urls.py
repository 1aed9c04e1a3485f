"""Storage URLs: the default, normalising, masking passwords, and which kind of storage a URL names."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import NasError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

DEFAULT_STORAGE = "journal:studies/nas.journal"  # a file several local worker processes may share
LEGACY_DEFAULT = "sqlite:///studies/nas.db"  # the default before one worker per core
STORAGE_FORMS = (
    "journal:studies/nas.journal, sqlite:///studies/nas.db, "
    "postgresql://user:pass@host:5432/db, mysql://user:pass@host:3306/db"
)


def _is_journal_text(url: str) -> bool:
    if url.startswith("journal:"):
        return True
    return "://" not in url and url.endswith((".journal", ".log"))


def default_storage() -> str:
    """The storage of a command run without --storage: $NAS_STORAGE when set, else DEFAULT_STORAGE."""
    return os.environ.get("NAS_STORAGE", "").strip() or DEFAULT_STORAGE


def normalize_url(url: str | None) -> str:
    """The storage URL nas uses: the default for None, `journal:PATH` for journal files, explicit drivers."""
    if url is None or not str(url).strip():
        url = default_storage()
        if url == DEFAULT_STORAGE:
            return url
        try:
            return normalize_url(url)
        except NasError as e:
            raise NasError(f"NAS_STORAGE={url!r} (the environment's default storage): {e}") from None
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
        scheme = "postgresql"  # SQLAlchemy's default driver for it is psycopg 3, as in Optuna and optuna-dashboard
    return f"{scheme}://{rest}"


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


def one_line(e: BaseException) -> str:
    """An exception (or the driver error inside it) as one short line for an error message."""
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e) or type(e).__name__
    text = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    text = re.sub(r"\(Background on this error.*$", "", text).strip()
    return text[:300]


def storage_label(storage: str | BaseStorage | None) -> str:
    """A printable name for a storage URL or object (password masked)."""
    if storage is None or isinstance(storage, str):
        return mask_url(storage)
    url = getattr(storage, "url", None) or getattr(getattr(storage, "_backend", None), "_file_path", None)
    if url is None:
        return type(storage).__name__
    return mask_url(str(url)) if "://" in str(url) else f"journal:{url}"


