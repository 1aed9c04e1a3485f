"""Letterbox and training augmentations: flip, mosaic, scale/translate (pillow, numpy), colour jitter (torch).

Every random draw comes from a numpy Generator passed in, so a seed fixes the whole pipeline.
Labels here are (k, 5) [cls, cx, cy, w, h] normalised to the image they belong to.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from nas.lazy import lazy

torch = lazy("torch")  # the colour jitter runs on the training device

PAD = 114  # YOLOv5's gray padding value


def letterbox(im: Image.Image, size: int) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """Resize an RGB image to fit size x size keeping its aspect ratio, pad the rest with gray 114.

    Returns (array (size, size, 3) uint8, ratio (new w / old w, new h / old h), pad (left, top) in pixels).
    The image is centred; labels must use the same integer pad as the pixels.
    """
    w0, h0 = im.size
    r = min(size / w0, size / h0)
    nw, nh = max(1, min(size, round(w0 * r))), max(1, min(size, round(h0 * r)))
    if (nw, nh) != (w0, h0):
        im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size, 3), PAD, dtype=np.uint8)
    out[top : top + nh, left : left + nw] = np.asarray(im, dtype=np.uint8)
    return out, (nw / w0, nh / h0), (left, top)


def labels_to_letterbox(
    labels: np.ndarray, shape0: tuple[int, int], ratio: tuple[float, float], pad: tuple[int, int], size: int
) -> np.ndarray:
    """Labels normalised to the original image (h0, w0) -> normalised to the letterboxed size x size image."""
    out = labels.astype(np.float32).copy()
    h0, w0 = shape0
    out[:, 1] = (labels[:, 1] * w0 * ratio[0] + pad[0]) / size
    out[:, 2] = (labels[:, 2] * h0 * ratio[1] + pad[1]) / size
    out[:, 3] = labels[:, 3] * w0 * ratio[0] / size
    out[:, 4] = labels[:, 4] * h0 * ratio[1] / size
    return out


def hflip(im: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right."""
    labels = labels.copy()
    labels[:, 1] = 1.0 - labels[:, 1]
    return im[:, ::-1], labels


def hsv_gains(gains: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Random hue/saturation/value gains, each uniform in [1 - g, 1 + g] (YOLOv5's draw); applied by color_jitter."""
    return (rng.uniform(-1, 1, 3) * np.asarray(gains) + 1).astype(np.float32)


def color_jitter(images: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """uint8 batch (b, h, w, 3) RGB -> float (b, 3, h, w) in [0, 1] with HSV-style jitter, gains (b, 3) = (h, s, v).

    Value: channels x v (clipped at 1). Saturation about the brightest channel, as HSV defines it:
    c -> max - (max - c) x s (clipped at 0). Hue: a rotation about the gray axis by (h - 1) x 180 degrees;
    YOLOv5 multiplies the hue angle by h instead, a shift of this size for a mid-circle hue.
    Runs on the training device as part of the uint8 -> float conversion (one 3x3 colour matrix per image),
    so it costs next to nothing beside the model.
    """
    b, h, w, _ = images.shape
    dtype = torch.float32
    g = gains.to(images.device, dtype)
    theta = (g[:, 0] - 1) * math.pi
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    eye = torch.eye(3, device=images.device, dtype=dtype)
    cross = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], device=images.device, dtype=dtype) / math.sqrt(3)
    rot = (cos * eye + sin * cross + (1 - cos) / 3) * (g[:, 2, None, None] / 255)  # hue, value, 0..255 -> 0..1
    pixels = images.reshape(b, h * w, 3).to(dtype).transpose(1, 2)  # (b, 3, hw) view of channels-last data
    y = torch.bmm(rot, pixels).clamp_(0, 1)  # (b, 3, hw), contiguous: NCHW
    s = g[:, 1, None, None]
    v = y.amax(1, keepdim=True)
    y.mul_(s).add_(v * (1 - s))  # max - (max - c) * s
    return y.clamp_(0, 1).reshape(b, 3, h, w)


def box_candidates(before: np.ndarray, after: np.ndarray, wh_thr: float = 2, ar_thr: float = 20, area_thr=0.1):
    """Which transformed boxes to keep: wider/taller than wh_thr pixels, >= area_thr of their unclipped
    area left after clipping, aspect ratio under ar_thr. Boxes are (n, 4) corner pixels."""
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    ar = np.maximum(w2 / (h2 + 1e-16), h2 / (w2 + 1e-16))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + 1e-16) > area_thr) & (ar < ar_thr)


def random_affine(
    im: np.ndarray, labels: np.ndarray, size: int, scale: float, translate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Scale about the centre and translate, output size x size; im may be larger (a mosaic canvas).

    The input's centre lands at the output's centre plus a shift of up to translate x size; scale is
    drawn from [1 - scale, 1 + scale]. Labels are normalised to the input on entry, to the output on exit.
    """
    h, w = im.shape[:2]
    s = rng.uniform(1 - scale, 1 + scale)
    tx, ty = rng.uniform(-translate, translate, 2) * size
    cx, cy = size / 2 + tx, size / 2 + ty  # where the input's centre goes
    # output (u, v) samples input (w/2 + (u - cx)/s, h/2 + (v - cy)/s)
    coeffs = (1 / s, 0.0, w / 2 - cx / s, 0.0, 1 / s, h / 2 - cy / s)
    out = Image.fromarray(np.ascontiguousarray(im)).transform(
        (size, size), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=(PAD, PAD, PAD)
    )
    if not len(labels):
        return np.asarray(out), labels
    xy = labels[:, 1:3] * (w, h)
    wh = labels[:, 3:5] * (w, h)
    before = np.concatenate((xy - wh / 2, xy + wh / 2), 1)
    before = (before - np.array([w / 2, h / 2, w / 2, h / 2])) * s + np.array([cx, cy, cx, cy])
    after = before.clip(0, size)
    keep = box_candidates(before, after)
    after = after[keep]
    new = np.zeros((len(after), 5), dtype=np.float32)
    new[:, 0] = labels[keep, 0]
    new[:, 1:3] = (after[:, :2] + after[:, 2:]) / 2 / size
    new[:, 3:5] = (after[:, 2:] - after[:, :2]) / size
    return np.asarray(out), new


def mosaic(
    images: list[np.ndarray], labels: list[np.ndarray], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Four size x size images around a random centre of a 2size x 2size gray canvas (YOLOv5's mosaic).

    Returns the canvas and its labels normalised to it; random_affine then cuts the training image out.
    """
    s = size
    canvas = np.full((2 * s, 2 * s, 3), PAD, dtype=np.uint8)
    xc, yc = (int(v) for v in rng.uniform(s / 2, 3 * s / 2, 2))
    out = []
    for k, (im, lb) in enumerate(zip(images, labels, strict=True)):
        # the image's corner at the centre: 0 top-left quadrant, 1 top-right, 2 bottom-left, 3 bottom-right
        x0 = xc - s if k in (0, 2) else xc
        y0 = yc - s if k in (0, 1) else yc
        cx1, cy1 = max(x0, 0), max(y0, 0)
        cx2, cy2 = min(x0 + s, 2 * s), min(y0 + s, 2 * s)
        canvas[cy1:cy2, cx1:cx2] = im[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
        if len(lb):
            xy = lb[:, 1:3] * s + (x0, y0)
            wh = lb[:, 3:5] * s
            b = np.concatenate((xy - wh / 2, xy + wh / 2), 1)
            c = b.copy()
            c[:, [0, 2]] = c[:, [0, 2]].clip(cx1, cx2)
            c[:, [1, 3]] = c[:, [1, 3]].clip(cy1, cy2)
            keep = box_candidates(b, c)
            c = c[keep]
            n = np.zeros((len(c), 5), dtype=np.float32)
            n[:, 0] = lb[keep, 0]
            n[:, 1:3] = (c[:, :2] + c[:, 2:]) / 2 / (2 * s)
            n[:, 3:5] = (c[:, 2:] - c[:, :2]) / (2 * s)
            out.append(n)
    return canvas, np.concatenate(out) if out else np.zeros((0, 5), dtype=np.float32)
