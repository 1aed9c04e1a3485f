"""A split of a YOLO-format dataset, letterboxed: its images (kept in memory under a budget), labels and
the shapes to map boxes back, read once per process and reused while its files are unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from nas.data.augment import labels_to_letterbox, letterbox
from nas.data.labels import label_error, label_path, parse_labels
from nas.data.spec import DataSpec, list_images
from nas.errors import NasError

log = logging.getLogger("nas.data")

CACHE_BUDGET = 4 << 30  # bytes of letterboxed pixels kept in memory per split; beyond it images are decoded lazily
MEMORY_CACHE_SIZE = 4  # letterboxed splits kept between runs in one process (a search trains many candidates)


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


__all__ = ["CACHE_BUDGET", "ImageSet", "clear_memory_cache", "load_split"]
