"""YOLO label files: where an image's labels live, reading one file, and the error for a split without a valid label.

Labels live where the last /images/ of an image path becomes /labels/ and the extension .txt: one
`class cx cy w h` line per object, normalised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.errors import NasError


def label_path(image: Path) -> Path:
    """The label file of an image: last /images/ -> /labels/, extension -> .txt."""
    s = str(image)
    a, b = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if a in s:
        head, tail = s.rsplit(a, 1)
        s = head + b + tail
    return Path(s).with_suffix(".txt")


@dataclass(frozen=True)
class LabelProblem:
    """One bad label line (line 0: the whole file), why it is bad, and which fix applies (kind)."""

    file: Path
    line: int
    kind: str  # one of LABEL_FIXES
    why: str

    def __str__(self) -> str:
        return f"{self.file.name}:{self.line} {self.why}" if self.line else f"{self.file.name}: {self.why}"


LABEL_FIXES = {
    "columns": "write one 'class cx cy w h' line per object",
    "number": "write numbers only",
    "class": "use class ids 0..{last} or name every class under 'names' in {where}",
    "box": "normalise boxes by the image size (cx/width, cy/height, w/width, h/height, all in 0..1)",
    "file": "save the label files as plain UTF-8 text",
}


def parse_labels(path: Path, nc: int) -> tuple[np.ndarray, list[LabelProblem]]:
    """Read one label file -> ((k, 5) float32 [cls, cx, cy, w, h] of its good lines, problems).

    A missing or empty file means no objects. Bad lines (wrong column count, not numbers, class outside
    0..nc-1, box outside the image or empty) are left out and described; polygon lines (class x1 y1 x2
    y2 ...) become their bounding box; coordinates a hair outside [0, 1] are clipped; exact duplicate
    lines are dropped.
    """
    if not path.is_file():
        return np.zeros((0, 5), dtype=np.float32), []
    rows, problems = [], []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        problem = LabelProblem(path, 0, "file", f"unreadable ({e.__class__.__name__})")
        return np.zeros((0, 5), dtype=np.float32), [problem]
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            v = [float(x) for x in parts]
        except ValueError:
            problems.append(LabelProblem(path, n, "number", f"not numbers: {line.strip()[:30]!r}"))
            continue
        if len(v) > 6 and len(v) % 2 == 1:  # polygon
            xy = np.asarray(v[1:]).reshape(-1, 2)
            lo, hi = xy.min(0), xy.max(0)
            v = [v[0], *((lo + hi) / 2), *(hi - lo)]
        if len(v) != 5:
            problems.append(LabelProblem(path, n, "columns", f"has {len(parts)} values, expected 5"))
            continue
        c, x, y, w, h = v
        if not all(np.isfinite(v)):
            problems.append(LabelProblem(path, n, "number", "has a value that is not finite"))
            continue
        if c != int(c) or not 0 <= c < nc:
            problems.append(LabelProblem(path, n, "class", f"class {parts[0]} not in 0..{nc - 1}"))
            continue
        x1, y1, x2, y2 = x - w / 2, y - h / 2, x + w / 2, y + h / 2
        tol = 0.01
        if w <= 0 or h <= 0 or min(x1, y1) < -tol or max(x2, y2) > 1 + tol:
            why = "box is empty" if w <= 0 or h <= 0 else "box reaches outside 0..1 (pixels, not normalised?)"
            problems.append(LabelProblem(path, n, "box", why))
            continue
        x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, 1.0), min(y2, 1.0)
        rows.append((c, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
    lb = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
    if len(lb):
        _, first = np.unique(lb, axis=0, return_index=True)
        lb = lb[np.sort(first)]
    return lb, problems


def label_error(split: str, where: str, nc: int, problems: list[LabelProblem], n_files: int) -> NasError:
    """The error for a split none of whose labels is usable: the folder, the first bad lines, the fixes."""
    folder = problems[0].file.parent
    shown = "; ".join(str(p) for p in problems[:3])
    more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
    kinds = dict.fromkeys(p.kind for p in problems)
    fixes = "; ".join(LABEL_FIXES[k].format(last=nc - 1, where=where) for k in kinds)
    return NasError(
        f"{split} split (from {where}) has no valid label: {len(problems)} bad line(s) in {n_files} file(s) "
        f"under {folder}: {shown}{more}; fix: {fixes}"
    )


__all__ = ["LABEL_FIXES", "LabelProblem", "label_error", "label_path", "parse_labels"]
