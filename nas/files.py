"""Writing the files users ask for (exports, plots, checkpoints, ONNX): only to a missing path or over a regular
file, through a temporary file in the same folder that replaces the target only once it is complete.

A device node, a FIFO, a socket or a folder at the path is refused and left as it was (an atomic rename would
replace it with a regular file); a failing write (no space left, read-only file system) leaves the previous file
intact. Every refusal is a NasError naming the option and the path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas.errors import NasError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _what_is(path: Path) -> str | None:
    """None for a missing path or a regular file (links followed), else what the path is."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # missing (a file on the way is reported by the caller)
        return None
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def check_output(path: str | Path, option: str = "--out") -> Path:
    """The path a file will be written to (a link to a regular file: its target); NasError unless the path is
    missing or a regular file, and its folder is (or can become) a folder."""
    path = Path(path)
    if path.is_symlink() and path.exists():
        path = path.resolve()
    what = _what_is(path)
    if what is not None:
        fix = f"name a file such as {path / 'out'}" if what == "a folder" else "name a regular file"
        raise NasError(f"{option} {path} is {what}; nas writes only a new file or over a regular file: {fix}")
    for folder in [path.parent, *path.parent.parents]:
        if folder.exists():
            if not folder.is_dir():
                raise NasError(f"{option} {path}: {folder} is not a folder; choose another path")
            break
    return path


def check_writable(path: str | Path, option: str = "--out") -> Path:
    """`check_output`, plus a probe file made and removed at once in the nearest existing folder on the way: for
    outputs that take long to produce, so a place that cannot be written is refused before the work."""
    target = check_output(path, option)
    folder = next((f for f in [target.parent, *target.parent.parents] if f.exists()), Path("."))
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}."[:40], suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise NasError(f"cannot write {option} {target}: {e.strerror or e}; choose a writable path") from None
    return target


@contextlib.contextmanager
def guarded_output(path: str | Path, option: str = "--out") -> Iterator[Path]:
    """Yield a temporary path (same folder, same suffix) to write the whole file to; on success it is synced and
    renamed over `path`, on any failure removed, leaving what was at `path` untouched."""
    target = check_output(path, option)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f"{target.suffix}.part"[-40:], dir=folder)
        os.close(fd)
    except OSError as e:
        raise NasError(f"cannot write {option} {target}: {e.strerror or e}; choose a writable path") from None
    tmp = Path(name)
    # writers that pick the format by suffix (matplotlib, torch.onnx) see the target's own suffix
    tmp_named = tmp.with_name(tmp.name[: -len(".part")])
    try:
        tmp.rename(tmp_named)
        yield tmp_named
        _fsync(tmp_named)
        check_output(target, option)  # still a regular file or missing after the write
        with contextlib.suppress(OSError):  # mkstemp made it 0600: the replaced file's mode, or a new file's
            os.chmod(tmp_named, _mode(target))
        os.replace(tmp_named, target)
        _fsync(folder, directory=True)
    except OSError as e:
        raise NasError(f"cannot write {option} {target}: {e.strerror or e}; the previous file (if any) is unchanged; "
                       f"free some space or choose a writable path") from None
    finally:
        for leftover in (tmp, tmp_named):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _mode(target: Path) -> int:
    """The mode of the file being replaced, or a new file's (0666 less the umask)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems cannot sync a folder; a file that cannot be synced is a failed write
            raise
    finally:
        os.close(fd)


def write_bytes(path: str | Path, data: bytes, option: str = "--out") -> Path:
    """Write a whole file through `guarded_output`; returns the path written."""
    with guarded_output(path, option) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return check_output(path, option)


def write_text(path: str | Path, text: str, option: str = "--out") -> Path:
    """`write_bytes` of UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"), option)


def save_figure(fig: Any, path: str | Path, option: str = "--plot") -> Path:
    """Write a figure to a picture file (PNG, PDF, SVG or JPG by its suffix) through the guarded writer, and
    close it: the one way every report's picture reaches the disk."""
    import matplotlib.pyplot as plt

    path = check_output(path, option)
    try:
        with guarded_output(path, option) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path
