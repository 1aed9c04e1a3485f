"""The built-in synthetic detection dataset: shapes on cluttered scenes, where some classes need context.

Every image is a *scene* of one of three kinds, shown only by a banner of the scene's colour (orange,
cyan or purple) along one image edge; objects keep a clear margin (a fifth of the image) from it.
- Local classes are a (shape, colour) pair, e.g. "red circle": the object alone tells its class.
- Context classes look identical (a white diamond) and differ only by the scene: "white diamond
  (orange scene)" vs "(cyan scene)" vs "(purple scene)". A window around the object cannot tell them
  apart; the banner, far away, can. Global pooling (GE extent=global, SGE), linear attention (FLA),
  routed attention (BiFormer) and focal modulation's global context bring that distant cue to the
  object, which a stack of local convolutions does only through its slowly-growing receptive field;
  that is why block choices can move fitness on this data and not only width.
The default 6 classes are 3 local + 3 context, each class about equally frequent. The same shapes in
other colours, and other shapes, appear as unlabelled distractors; objects range from a few pixels to
half the image, may be partly hidden by later shapes, and sit on gradients, blobs, lines and noise.
Every image is drawn from its own numpy Generator seeded by (seed, split, index) and the scene is its
first draw, so forcing another scene changes only the banner and the context labels (see `draw`).
A dataset is a pure function of its options; it is written once under the cache folder as JPEGs +
label files + data.yaml, in a folder named by GENERATOR_VERSION and the options.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nas.errors import NasError

GENERATOR_VERSION = 3  # bump whenever the drawing changes: it is part of the cache key
SUPERSAMPLE = 2  # draw at this multiple of the output size, then downsample, for smooth edges
BANNER = (0.08, 0.14)  # banner thickness, fraction of the image side it spans across
MARGIN = 0.2  # objects stay this fraction of the shorter side away from the banner

PALETTE = {
    "red": (215, 45, 40),
    "green": (40, 165, 65),
    "blue": (45, 85, 215),
    "yellow": (230, 195, 35),
    "white": (238, 238, 232),
}
SCENES = {  # banner colours: hues far from the object palette, so no banner reads as an object's colour
    "orange": (240, 130, 30),
    "cyan": (30, 190, 200),
    "purple": (155, 55, 185),
}


@dataclass(frozen=True)
class ObjectClass:
    """A class: a shape in a colour, in any scene (scene None: a local class) or in one scene only."""

    shape: str
    colour: str
    scene: str | None = None

    @property
    def name(self) -> str:
        """E.g. 'red circle' or 'white diamond (cyan scene)'."""
        return f"{self.colour} {self.shape}" + (f" ({self.scene} scene)" if self.scene else "")


CLASSES = (
    ObjectClass("circle", "red"),
    ObjectClass("square", "blue"),
    ObjectClass("triangle", "green"),
    ObjectClass("diamond", "white", "orange"),
    ObjectClass("diamond", "white", "cyan"),
    ObjectClass("diamond", "white", "purple"),
    ObjectClass("cross", "yellow"),
    ObjectClass("circle", "blue"),
)
CLASS_SHAPES = tuple(dict.fromkeys(c.shape for c in CLASSES))
OTHER_SHAPES = ("ring", "star", "bar", "frame")
DISTRACTOR_COLOURS = ("red", "green", "blue", "yellow")  # never white: white shapes are the context classes


@dataclass(frozen=True)
class SyntheticConfig:
    """Options of the synthetic dataset; all of them (and GENERATOR_VERSION) form its cache key.

    size: image width in pixels (heights vary from 0.6x to 1x); difficulty in [0, 1] scales clutter,
    distractors, noise, occlusion and how small objects get; nc: classes used (1..8, CLASSES in order).
    """

    n_train: int = 256
    n_val: int = 64
    size: int = 256
    difficulty: float = 0.5
    nc: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.nc <= len(CLASSES):
            raise NasError(f"synthetic dataset: nc={self.nc} must be 1..{len(CLASSES)}")
        if self.n_train < 1 or self.n_val < 1:
            raise NasError("synthetic dataset: n_train and n_val must be at least 1")
        if self.size < 32:
            raise NasError(f"synthetic dataset: size={self.size} must be at least 32 pixels")
        if not 0.0 <= self.difficulty <= 1.0:
            raise NasError(f"synthetic dataset: difficulty={self.difficulty} must lie in [0, 1]")

    @property
    def names(self) -> list[str]:
        """Class names, e.g. 'red circle', 'white diamond (cyan scene)'."""
        return [c.name for c in CLASSES[: self.nc]]

    def key(self) -> str:
        """Cache key: generator version plus every option."""
        blob = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return f"v{GENERATOR_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


@dataclass
class Sample:
    """One drawn image (h, w, 3) uint8, its labels (k, 5) [cls, cx, cy, w, h] normalised, its scene (an
    index into SCENES) and the banner (x1, y1, x2, y2) in pixels."""

    image: np.ndarray
    labels: np.ndarray
    scene: int
    banner: tuple[int, int, int, int]


def default_cache_dir() -> Path:
    """$NAS_CACHE, else ~/.cache/nas."""
    return Path(os.environ.get("NAS_CACHE") or Path.home() / ".cache" / "nas").expanduser()


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: float) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.normal(0, amount), 0, 255)) for c in rgb)


def _background(rng: np.random.Generator, w: int, h: int, difficulty: float) -> Image.Image:
    """Muted two-colour gradient plus smooth colour blobs, built on a coarse grid and upsampled to (w, h)."""
    c0, c1 = (rng.uniform(70, 190, 3) for _ in range(2))
    gray0, gray1 = c0.mean(), c1.mean()
    c0, c1 = gray0 + 0.35 * (c0 - gray0), gray1 + 0.35 * (c1 - gray1)  # desaturate: objects stand out by hue
    a = rng.uniform(0, 2 * math.pi)
    g = int(rng.integers(3, 7))  # blob grid; the gradient is linear, so the coarse grid holds it exactly
    yy, xx = np.mgrid[0:g, 0:g].astype(np.float64) / (g - 1)
    t = np.cos(a) * xx + np.sin(a) * yy
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    field = c0 * (1 - t[..., None]) + c1 * t[..., None] + rng.normal(0, 12 + 30 * difficulty, (g, g, 3))
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)


def _shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[float, ...], fill: tuple, rng) -> None:
    """Draw one shape filling the box (x1, y1, x2, y2) exactly."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if kind == "circle":
        draw.ellipse(box, fill=fill)
    elif kind == "square":
        draw.rectangle(box, fill=fill)
    elif kind == "triangle":
        if rng.random() < 0.5:
            draw.polygon([(x1, y2), (x2, y2), (cx, y1)], fill=fill)
        else:
            draw.polygon([(x1, y1), (x2, y1), (cx, y2)], fill=fill)
    elif kind == "cross":
        t = 0.34 * min(w, h) / 2
        draw.rectangle((x1, cy - t, x2, cy + t), fill=fill)
        draw.rectangle((cx - t, y1, cx + t, y2), fill=fill)
    elif kind == "ring":
        draw.ellipse(box, outline=fill, width=max(1, round(0.16 * min(w, h))))
    elif kind == "frame":
        draw.rectangle(box, outline=fill, width=max(1, round(0.16 * min(w, h))))
    elif kind == "diamond":
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=fill)
    elif kind == "star":
        pts = []
        for k in range(10):
            r = 0.5 if k % 2 == 0 else 0.2
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * w * math.cos(ang), cy + r * h * math.sin(ang)))
        draw.polygon(pts, fill=fill)
    elif kind == "bar":
        draw.rectangle(box, fill=fill)
    else:  # pragma: no cover - internal table
        raise ValueError(kind)


def _banner(rng: np.random.Generator, w: int, h: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The scene banner along one random edge, and the region (x1, y1, x2, y2) objects may use."""
    edge = int(rng.integers(4))  # 0 top, 1 bottom, 2 left, 3 right
    span = h if edge < 2 else w
    t = max(2, round(span * rng.uniform(*BANNER)))
    m = MARGIN * min(w, h)
    if edge == 0:
        return (0, 0, w, t), (0, t + m, w, h)
    if edge == 1:
        return (0, h - t, w, h), (0, 0, w, h - t - m)
    if edge == 2:
        return (0, 0, t, h), (t + m, 0, w, h)
    return (w - t, 0, w, h), (0, 0, w - t - m, h)


def render(cfg: SyntheticConfig, rng: np.random.Generator, scene: int | None = None) -> Sample:
    """One image and its labels. The scene is rng's first draw; passing scene forces it instead while
    every other draw stays the same, so only the banner's colour and the context classes change."""
    drawn = int(rng.integers(len(SCENES)))
    scene = drawn if scene is None else scene
    scene_name, scene_rgb = list(SCENES.items())[scene]
    d = cfg.difficulty
    w = cfg.size
    h = w if rng.random() < 0.5 else int(round(w * rng.uniform(0.6, 1.0) / 2) * 2)
    ss = SUPERSAMPLE
    canvas = _background(rng, w * ss, h * ss, d)
    draw = ImageDraw.Draw(canvas)

    for _ in range(int(rng.integers(0, 3 + round(10 * d)))):  # clutter: lines and outlines in muted colours
        col = tuple(int(v) for v in rng.uniform(60, 200, 3))
        p = rng.uniform(0, 1, 4) * (w * ss, h * ss, w * ss, h * ss)
        if rng.random() < 0.6:
            draw.line(tuple(p), fill=col, width=int(rng.integers(1, 3 * ss)))
        else:
            draw.arc(tuple(np.sort(p.reshape(2, 2), 0).ravel()), 0, float(rng.uniform(90, 360)), fill=col,
                     width=int(rng.integers(1, 2 * ss)))  # fmt: skip

    banner, (fx1, fy1, fx2, fy2) = _banner(rng, w, h)
    draw.rectangle(tuple(v * ss for v in banner[:2]) + tuple(v * ss - 1 for v in banner[2:]),
                   fill=_jitter(scene_rgb, rng, 12))  # fmt: skip

    classes = CLASSES[: cfg.nc]
    looks = list(dict.fromkeys((c.shape, c.colour) for c in classes))  # what a labelled object looks like
    weights = np.array([len(SCENES) if any(c.scene for c in classes if (c.shape, c.colour) == k) else 1
                        for k in looks], dtype=np.float64)  # fmt: skip
    weights /= weights.sum()  # context looks are labelled in one scene of three: drawn 3x as often
    class_of = {(c.shape, c.colour, c.scene): i for i, c in enumerate(classes)}

    n_obj = 0 if rng.random() < 0.04 else int(rng.integers(2, 6 + round(4 * d)))
    n_dis = int(rng.integers(0, 2 + round(4 * d)))
    items = ["object"] * n_obj + ["distractor"] * n_dis
    order = rng.permutation(len(items))
    fw, fh = fx2 - fx1, fy2 - fy1
    smin, smax = max(4.0, 10.0 - 5.0 * d), 0.5 * min(w, h)
    max_cover = 0.15 + 0.35 * d  # at most this fraction of an earlier shape's box may be hidden
    placed: list[np.ndarray] = []
    labels = []
    for j in order:
        s = math.exp(rng.uniform(math.log(smin), math.log(smax)))
        if items[j] == "object":
            kind, colour = looks[int(rng.choice(len(looks), p=weights))]
            c = class_of.get((kind, colour, None), class_of.get((kind, colour, scene_name), -1))
            aspect = rng.uniform(0.8, 1.25)
        else:
            c = -1
            if rng.random() < 0.5:  # a class shape in a colour that makes it no class
                kind = CLASS_SHAPES[int(rng.integers(len(CLASS_SHAPES)))]
                colours = [k for k in DISTRACTOR_COLOURS if (kind, k) not in looks]
                colour = colours[int(rng.integers(len(colours)))] if colours else "gray"
            else:
                kind = OTHER_SHAPES[int(rng.integers(len(OTHER_SHAPES)))]
                colour = DISTRACTOR_COLOURS[int(rng.integers(len(DISTRACTOR_COLOURS)))]
            aspect = rng.uniform(3, 6) if kind == "bar" else rng.uniform(0.8, 1.25)
            if kind == "bar" and rng.random() < 0.5:
                aspect = 1 / aspect
        bw, bh = s * math.sqrt(aspect), s / math.sqrt(aspect)
        bw, bh = min(bw, fw - 2), min(bh, fh - 2)
        box = None
        for _ in range(30):
            x1, y1 = rng.uniform(fx1, fx2 - bw), rng.uniform(fy1, fy2 - bh)
            cand = np.array([x1, y1, x1 + bw, y1 + bh])
            ok = True
            for b in placed:
                iw = min(cand[2], b[2]) - max(cand[0], b[0])
                ih = min(cand[3], b[3]) - max(cand[1], b[1])
                if iw > 0 and ih > 0 and iw * ih > max_cover * (b[2] - b[0]) * (b[3] - b[1]):
                    ok = False
                    break
            if ok:
                box = cand
                break
        if box is None:
            continue
        placed.append(box)
        rgb = PALETTE.get(colour, (128, 128, 128))
        _shape(draw, kind, tuple(float(v) * ss for v in box), _jitter(rgb, rng, 12), rng)
        if c >= 0:
            x1, y1, x2, y2 = box
            labels.append((c, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h))

    img = np.asarray(canvas.resize((w, h), Image.BOX), dtype=np.float32)
    img += rng.standard_normal(img.shape, dtype=np.float32) * (2 + 8 * d)
    image = np.clip(img, 0, 255).astype(np.uint8)
    return Sample(image, np.asarray(labels, dtype=np.float64).reshape(-1, 5), scene, banner)


def draw(cfg: SyntheticConfig, split: str, i: int, scene: int | None = None) -> Sample:
    """Image i of a split exactly as the dataset holds it (before JPEG), or with its scene forced."""
    return render(cfg, np.random.default_rng([cfg.seed, 0 if split == "train" else 1, i]), scene)


def _write(cfg: SyntheticConfig, root: Path, split: str, i: int) -> None:
    sample = draw(cfg, split, i)
    Image.fromarray(sample.image).save(root / "images" / split / f"{i:06d}.jpg", quality=92)
    text = "".join(f"{int(c)} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f}\n" for c, x, y, bw, bh in sample.labels)
    (root / "labels" / split / f"{i:06d}.txt").write_text(text)


def synthetic_dataset(cfg: SyntheticConfig | None = None, cache_dir: str | Path | None = None) -> Path:
    """Generate (once) the synthetic dataset for cfg under cache_dir/synthetic/<key>; return its data.yaml.

    A complete copy is recognised by its meta.json; generation writes to a temporary folder and renames
    it, so concurrent processes never see half a dataset.
    """
    cfg = cfg or SyntheticConfig()
    base = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    root = base / "synthetic" / cfg.key()
    if (root / "meta.json").is_file() and (root / "data.yaml").is_file():
        return root / "data.yaml"
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        for split in ("train", "val"):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        jobs = [("train", i) for i in range(cfg.n_train)] + [("val", i) for i in range(cfg.n_val)]
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda job: _write(cfg, tmp, *job), jobs))
        names = "".join(f"  {k}: {n}\n" for k, n in enumerate(cfg.names))
        (tmp / "data.yaml").write_text(
            f"# nas synthetic dataset, generator v{GENERATOR_VERSION}\n"
            "path:\ntrain: images/train\nval: images/val\n"
            f"names:\n{names}"
        )
        (tmp / "meta.json").write_text(json.dumps({"version": GENERATOR_VERSION, **asdict(cfg)}, indent=1))
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first
            if not (root / "meta.json").is_file():
                raise
    except OSError as e:
        raise NasError(
            f"cannot write the synthetic dataset under {base}: {e}; set NAS_CACHE to a writable folder"
        ) from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root / "data.yaml"
