"""Training samples and batches of a letterboxed split: geometric and colour augmentation drawn from one rng."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nas.data.augment import hflip, hsv_gains, mosaic, random_affine
from nas.data.dataset import ImageSet


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


__all__ = ["Augment", "Batch", "batches", "training_sample"]
