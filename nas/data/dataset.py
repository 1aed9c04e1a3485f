"""YOLO-format datasets: data YAML, image lists, label files, letterboxed in-memory image cache, batches.

A data YAML (ultralytics format) has `path` (dataset root; relative to the YAML's folder, which is also
the root when empty), `train` and `val` (a folder, a .txt list of images or a list of those, relative
to the root) and `names` (list or {index: name}) or `nc`. Labels live where the last /images/ of an
image path becomes /labels/ and the extension .txt: one `class cx cy w h` line per object, normalised.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from nas.data.augment import hflip, hsv_gains, labels_to_letterbox, letterbox, mosaic, random_affine
from nas.errors import NasError

log = logging.getLogger("nas.data")

IMG_SUFFIXES = {".bmp", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp"}
CACHE_BUDGET = 4 << 30  # bytes of letterboxed pixels kept in memory per split; beyond it images are decoded lazily
MEMORY_CACHE_SIZE = 4  # letterboxed splits kept between runs in one process (a search trains many candidates)


@dataclass
class DataSpec:
    """A resolved data YAML: absolute image sources per split and the class names."""

    train: list[Path]
    val: list[Path]
    names: list[str]
    yaml: Path | None = None

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)


def _names(d: dict, where: str) -> list[str]:
    names, nc = d.get("names"), d.get("nc")
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise NasError(f"{where}: 'names' keys must be class indices 0..nc-1; fix the names mapping") from None
        if keys != list(range(len(keys))):
            raise NasError(f"{where}: 'names' must number the classes 0..{len(keys) - 1} without gaps")
        names = [str(names.get(k, names.get(str(k)))) for k in keys]
    elif isinstance(names, (list, tuple)):
        names = [str(n) for n in names]
    elif names is None:
        if not isinstance(nc, int) or nc < 1:
            raise NasError(f"{where}: give the class names ('names: [a, b]') or their count ('nc: 2')")
        names = [f"class{i}" for i in range(nc)]
    else:
        raise NasError(f"{where}: 'names' must be a list or a mapping {{index: name}}")
    if nc is not None and int(nc) != len(names):
        raise NasError(f"{where}: nc is {nc} but 'names' lists {len(names)} classes; make them agree")
    if not names:
        raise NasError(f"{where}: 'names' is empty; list the class names")
    return names


def load_data_yaml(data: str | Path | dict) -> DataSpec:
    """A data YAML path (or a loaded dict, whose paths are relative to the working directory) -> DataSpec."""
    import yaml

    if isinstance(data, dict):
        d, base, where, src = data, Path.cwd(), "data", None
    else:
        src = Path(data).expanduser()
        if src.is_dir() and (src / "data.yaml").is_file():
            src = src / "data.yaml"
        if not src.is_file():
            raise NasError(f"data YAML not found: {src}; pass an existing ultralytics-format data YAML")
        try:
            d = yaml.safe_load(src.read_text())
        except yaml.YAMLError as e:
            raise NasError(f"{src}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax") from None
        if not isinstance(d, dict):
            raise NasError(f"{src}: expected a mapping with path/train/val/names")
        base, where = src.resolve().parent, str(src)
    root = Path(str(d.get("path") or "")).expanduser()
    root = root if root.is_absolute() else (base / root)
    splits = {}
    for split in ("train", "val"):
        v = d.get(split)
        if not v:
            raise NasError(f"{where}: no '{split}:' entry; add the {split} images folder or .txt list")
        items = v if isinstance(v, (list, tuple)) else [v]
        paths = []
        for x in items:
            p = Path(str(x)).expanduser()
            paths.append((p if p.is_absolute() else root / p).resolve())
        splits[split] = paths
    return DataSpec(splits["train"], splits["val"], _names(d, where), None if src is None else src.resolve())


def list_images(sources: list[Path], split: str, where: str) -> list[Path]:
    """Image files from folders (searched recursively) and .txt lists, sorted per source; NasError if none."""
    files: list[Path] = []
    for src in sources:
        if src.is_dir():
            found = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMG_SUFFIXES and p.is_file())
        elif src.is_file() and src.suffix == ".txt":
            found = []
            for line in src.read_text().splitlines():
                line = line.strip()
                if not line:
                    continue
                p = Path(line)
                if not p.is_absolute():
                    p = src.parent / (line[2:] if line.startswith("./") else line)
                if p.suffix.lower() in IMG_SUFFIXES:
                    found.append(p.resolve())
        elif src.is_file() and src.suffix.lower() in IMG_SUFFIXES:
            found = [src]
        else:
            raise NasError(f"{split} images not found: {src} (from {where}); create it or fix '{split}:' there")
        files += found
    if not files:
        shown = ", ".join(str(s) for s in sources)
        raise NasError(f"{split} split is empty: no images in {shown} (from {where}); add images or fix '{split}:'")
    return files


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


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        im = im.convert("RGB")
        im.load()
    if min(im.size) < 2:
        raise ValueError(f"image size {im.size} too small")
    return im


@dataclass
class ImageSet:
    """One split, letterboxed to size x size: images (in memory unless over the cache budget) and labels.

    labels[i]: (k, 5) [cls, cx, cy, w, h] normalised to the letterboxed image (training targets);
    labels0[i]: the same normalised to the original image; shapes0[i]: original (h, w);
    ratios[i], pads[i]: letterbox (rw, rh) and (left, top) to map boxes back to the original.
    """

    files: list[Path]
    size: int
    names: list[str]
    labels: list[np.ndarray]
    labels0: list[np.ndarray]
    shapes0: list[tuple[int, int]]
    ratios: list[tuple[float, float]]
    pads: list[tuple[int, int]]
    images: np.ndarray | None = None  # (n, size, size, 3) uint8, or None when decoded on demand
    skipped: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def nc(self) -> int:
        """Number of classes."""
        return len(self.names)

    def image(self, i: int) -> np.ndarray:
        """Letterboxed image i (size, size, 3) uint8."""
        if self.images is not None:
            return self.images[i]
        return letterbox(_open_rgb(self.files[i]), self.size)[0]

    def boxes0(self, i: int) -> np.ndarray:
        """Ground truth of image i as (k, 5) [cls, x1, y1, x2, y2] in original pixels."""
        lb = self.labels0[i]
        h, w = self.shapes0[i]
        out = np.zeros((len(lb), 5), dtype=np.float64)
        out[:, 0] = lb[:, 0]
        out[:, 1] = (lb[:, 1] - lb[:, 3] / 2) * w
        out[:, 2] = (lb[:, 2] - lb[:, 4] / 2) * h
        out[:, 3] = (lb[:, 1] + lb[:, 3] / 2) * w
        out[:, 4] = (lb[:, 2] + lb[:, 4] / 2) * h
        return out


def _fingerprint(files: list[Path], size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    for f in files:
        lp = label_path(f)
        for p in (f, lp):
            try:
                st = p.stat()
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{p}\0-\n".encode())
    return h.hexdigest()


_MEMORY: OrderedDict[str, ImageSet] = OrderedDict()


def clear_memory_cache() -> None:
    """Forget the letterboxed splits kept in memory."""
    _MEMORY.clear()


def load_split(
    spec: DataSpec, split: str, size: int, cache: bool | None = None, workers: int | None = None
) -> ImageSet:
    """Read and letterbox one split ("train" or "val"), skipping corrupt images and corrupt label files.

    An image whose label file has a bad line is left out (YOLOv5's rule); a split left without a single
    valid label that way is a NasError naming the first bad lines. cache: keep letterboxed pixels in
    memory (None: when under CACHE_BUDGET). Splits already loaded in this process with unchanged files
    are reused. Problems are counted and reported in one warning.
    """
    where = str(spec.yaml) if spec.yaml else "the data dict"
    files = list_images(getattr(spec, split), split, where)
    key = _fingerprint(files, size) + f"|{cache}|{spec.nc}"  # nc decides which label lines are valid
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    keep_pixels = cache if cache is not None else len(files) * size * size * 3 <= CACHE_BUDGET

    def read(path: Path):
        try:
            im = _open_rgb(path)
        except Exception as e:  # any decoder failure means a corrupt file, never a crash
            return None, f"{path.name}: {e.__class__.__name__}: {str(e)[:80]}"
        w0, h0 = im.size
        if keep_pixels:
            arr, ratio, pad = letterbox(im, size)
        else:
            arr = None
            r = min(size / w0, size / h0)
            nw, nh = max(1, min(size, round(w0 * r))), max(1, min(size, round(h0 * r)))
            ratio, pad = (nw / w0, nh / h0), ((size - nw) // 2, (size - nh) // 2)
        return (arr, (h0, w0), ratio, pad), None

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(pool.map(read, files))

    bad_images, bad_lines, bad_files = [], [], 0
    kept, arrays, labels, labels0, shapes, ratios, pads = [], [], [], [], [], [], []
    for f, (res, err) in zip(files, decoded, strict=True):
        if res is None:
            bad_images.append(err)
            continue
        arr, shape0, ratio, pad = res
        lb, problems = parse_labels(label_path(f), spec.nc)
        if problems:  # as in YOLOv5, a corrupt label file drops its image: its unlabelled objects would teach
            bad_lines += problems  # "background" in training and count as false positives in validation
            bad_files += 1
            continue
        kept.append(f)
        arrays.append(arr)
        shapes.append(shape0)
        ratios.append(ratio)
        pads.append(pad)
        labels0.append(lb)
        labels.append(labels_to_letterbox(lb, shape0, ratio, pad, size))
    if not kept and not bad_lines:
        raise NasError(f"{split} split has no readable images ({len(files)} corrupt) in {where}; replace them")
    if not any(len(lb) for lb in labels0):  # background images are fine, a split of nothing else is not
        if bad_lines:
            raise label_error(split, where, spec.nc, bad_lines, bad_files)
        raise NasError(
            f"{split} split (from {where}) has no labels: none of its {len(kept)} image(s) has a label line "
            f"(looked for e.g. {label_path(kept[0])}); put one 'class cx cy w h' line per object there"
        )
    if bad_images or bad_lines:
        shown = (bad_images + [str(p) for p in bad_lines])[:4]
        more = len(bad_images) + len(bad_lines) - len(shown)
        log.warning(
            f"{split}: skipped {len(bad_images)} corrupt image(s) and {bad_files} image(s) with a corrupt label file "
            f"({len(bad_lines)} bad line(s)): " + "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        )
    images = np.stack(arrays) if keep_pixels else None
    out = ImageSet(
        kept, size, list(spec.names), labels, labels0, shapes, ratios, pads, images,
        {"images": len(bad_images), "label_files": bad_files, "label_lines": len(bad_lines)},
    )  # fmt: skip
    _MEMORY[key] = out
    while len(_MEMORY) > MEMORY_CACHE_SIZE:
        _MEMORY.popitem(last=False)
    return out


@dataclass
class Augment:
    """Training augmentation settings (YOLOv5 hyp names); probabilities and gains."""

    fliplr: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    mosaic: float = 0.0
    scale: float = 0.0
    translate: float = 0.0


def training_sample(
    data: ImageSet, i: int, aug: Augment | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Image i (size, size, 3) uint8 and its labels after geometric augmentation, plus its colour gains
    (h, s, v) for color_jitter, or None without colour jitter. Draw order is fixed, so rng fixes all."""
    im, lb = data.image(i), data.labels[i]
    if aug is None:
        return im, lb, None
    size = data.size
    if aug.mosaic and rng.random() < aug.mosaic:
        others = rng.integers(0, len(data), 3)
        idx = [i, *(int(j) for j in others)]
        canvas, lb = mosaic([data.image(j) for j in idx], [data.labels[j] for j in idx], size, rng)
        im, lb = random_affine(canvas, lb, size, aug.scale, aug.translate, rng)
    elif aug.scale or aug.translate:
        im, lb = random_affine(im, lb, size, aug.scale, aug.translate, rng)
    gains = hsv_gains((aug.hsv_h, aug.hsv_s, aug.hsv_v), rng) if (aug.hsv_h or aug.hsv_s or aug.hsv_v) else None
    if aug.fliplr and rng.random() < aug.fliplr:
        im, lb = hflip(im, lb)
    return im, lb, gains


@dataclass
class Batch:
    """A batch: images (b, size, size, 3) uint8, targets (nt, 6) [image, cls, cx, cy, w, h] normalised,
    dataset indices, and per-image colour gains (b, 3) or None."""

    images: np.ndarray
    targets: np.ndarray
    indices: np.ndarray
    hsv: np.ndarray | None = None


def batches(
    data: ImageSet,
    batch: int,
    rng: np.random.Generator | None = None,
    aug: Augment | None = None,
) -> Iterator[Batch]:
    """Batches in a permutation drawn from rng (training, with aug), or in file order without rng (evaluation)."""
    order = rng.permutation(len(data)) if rng is not None else np.arange(len(data))
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        ims, tg, gains = [], [], []
        for k, i in enumerate(idx):
            if rng is not None:
                im, lb, g = training_sample(data, int(i), aug, rng)
            else:
                im, lb, g = data.image(i), data.labels[i], None
            ims.append(im)
            gains.append(g)
            if len(lb):
                tg.append(np.concatenate((np.full((len(lb), 1), k, dtype=np.float32), lb), 1))
        targets = np.concatenate(tg).astype(np.float32) if tg else np.zeros((0, 6), dtype=np.float32)
        hsv = np.stack(gains) if gains and gains[0] is not None else None
        yield Batch(np.stack(ims), targets, idx, hsv)
