"""The built-in synthetic dataset: deterministic, cached by generator version, valid labels, context classes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nas.data import SyntheticConfig, clear_memory_cache, load_data_yaml, load_split, synthetic, synthetic_dataset
from nas.data.synthetic import CLASSES, MARGIN, SCENES, draw
from nas.errors import NasError


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    clear_memory_cache()
    yield
    clear_memory_cache()


def files_of(yaml_path):
    root = yaml_path.parent
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_deterministic_and_cached(tmp_path):
    cfg = SyntheticConfig(n_train=6, n_val=3, size=96, seed=3)
    y1 = synthetic_dataset(cfg, tmp_path / "c1")
    y2 = synthetic_dataset(cfg, tmp_path / "c2")
    f1, f2 = files_of(y1), files_of(y2)
    assert len(f1) == 2 * 9 + 2 and f1 == f2  # byte-identical images, labels, data.yaml, meta.json
    # cached: the second call returns the same folder without rewriting it
    stamp = (y1.parent / "images" / "train" / "000000.jpg").stat().st_mtime_ns
    assert synthetic_dataset(cfg, tmp_path / "c1") == y1
    assert (y1.parent / "images" / "train" / "000000.jpg").stat().st_mtime_ns == stamp
    # another seed, another dataset (and another cache key)
    y3 = synthetic_dataset(SyntheticConfig(n_train=6, n_val=3, size=96, seed=4), tmp_path / "c1")
    assert y3 != y1
    assert (y3.parent / "images/train/000000.jpg").read_bytes() != (y1.parent / "images/train/000000.jpg").read_bytes()
    # more images keep the first ones (each image has its own seed)
    y4 = synthetic_dataset(SyntheticConfig(n_train=8, n_val=3, size=96, seed=3), tmp_path / "c1")
    assert (y4.parent / "labels/train/000005.txt").read_text() == (y1.parent / "labels/train/000005.txt").read_text()


def test_a_new_generator_version_never_reads_a_stale_cache(tmp_path, monkeypatch):
    cfg = SyntheticConfig(n_train=2, n_val=1, size=64)
    old = synthetic_dataset(cfg, tmp_path)
    assert old.parent.name == cfg.key() and cfg.key().startswith(f"v{synthetic.GENERATOR_VERSION}-")
    (old.parent / "labels" / "train" / "000000.txt").write_text("stale\n")  # what an older generator left
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    assert cfg.key() != old.parent.name
    new = synthetic_dataset(cfg, tmp_path)
    assert new != old and (new.parent / "labels" / "train" / "000000.txt").read_text() != "stale\n"
    assert f"generator v{synthetic.GENERATOR_VERSION}" in new.read_text()


def test_labels_are_valid_and_every_class_occurs(tmp_path):
    cfg = SyntheticConfig(n_train=48, n_val=4, size=128)
    spec = load_data_yaml(synthetic_dataset(cfg, tmp_path))
    assert spec.names == [
        "red circle", "blue square", "green triangle",
        "white diamond (orange scene)", "white diamond (cyan scene)", "white diamond (purple scene)",
    ]  # fmt: skip
    train = load_split(spec, "train", 128)
    assert train.skipped == {"images": 0, "label_files": 0, "label_lines": 0} and len(train) == 48
    lb = np.concatenate(train.labels0)
    counts = np.bincount(lb[:, 0].astype(int), minlength=7)
    assert counts[6] == 0 and counts[:6].min() >= 0.4 * counts[:6].mean()  # every class, none starved
    assert lb[:, 1:].min() > 0 and (lb[:, 1:3] + lb[:, 3:5] / 2).max() <= 1 and (lb[:, 1:3] - lb[:, 3:5] / 2).min() >= 0
    sizes = np.sqrt(lb[:, 3] * lb[:, 4]) * 128
    assert sizes.min() < 12 and sizes.max() > 40  # a few pixels to large
    heights = {h for h, _ in train.shapes0}
    assert 128 in heights and len(heights) > 1  # square and shorter images (letterboxed)
    # the written labels are those drawn
    for i in range(3):
        written = np.loadtxt(tmp_path / "synthetic" / cfg.key() / "labels" / "train" / f"{i:06d}.txt", ndmin=2)
        assert written.reshape(-1, 5) == pytest.approx(draw(cfg, "train", i).labels.reshape(-1, 5), abs=2e-6)
    assert SyntheticConfig(nc=4).names[3] == "white diamond (orange scene)"
    with pytest.raises(NasError, match="nc=9"):
        SyntheticConfig(nc=9)


def test_objects_keep_away_from_the_scene_banner():
    cfg = SyntheticConfig(size=128)
    for i in range(20):
        s = draw(cfg, "train", i)
        h, w = s.image.shape[:2]
        bx1, by1, bx2, by2 = s.banner
        assert (bx2 - bx1 == w) != (by2 - by1 == h)  # a full strip along one edge
        for _, cx, cy, bw, bh in s.labels:
            x1, y1, x2, y2 = (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h
            gap = max(bx1 - x2, x1 - bx2, by1 - y2, y1 - by2)
            assert gap >= MARGIN * min(w, h) - 1e-6


def test_context_classes_depend_on_the_distant_scene_cue_only():
    """The same image in another scene: pixels differ only in the banner; local classes stay, each white
    diamond becomes the class of the new scene; so the object and its surroundings alone cannot tell."""
    cfg = SyntheticConfig(size=128)
    context = {c.scene: k for k, c in enumerate(CLASSES[: cfg.nc]) if c.scene}
    seen_context = 0
    for i in range(12):
        natural = draw(cfg, "val", i)
        assert np.array_equal(draw(cfg, "val", i, scene=natural.scene).image, natural.image)
        scenes = [draw(cfg, "val", i, scene=k) for k in range(len(SCENES))]
        bx1, by1, bx2, by2 = natural.banner
        outside = np.ones(natural.image.shape[:2], bool)
        outside[by1:by2, bx1:bx2] = False
        for k, s in enumerate(scenes):
            assert s.scene == k and s.banner == natural.banner
            assert np.array_equal(s.image[outside], natural.image[outside])
            banner_rgb = s.image[~outside].reshape(-1, 3).mean(0)
            nearest = int(np.argmin([np.abs(banner_rgb - rgb).sum() for rgb in SCENES.values()]))
            assert nearest == k  # the banner shows the scene
            assert np.array_equal(s.labels[:, 1:], natural.labels[:, 1:])  # same objects, same boxes
            is_context = np.isin(natural.labels[:, 0], list(context.values()))
            assert np.array_equal(s.labels[~is_context, 0], natural.labels[~is_context, 0])
            assert (s.labels[is_context, 0] == context[list(SCENES)[k]]).all()
            seen_context += int(is_context.sum())
    assert seen_context > 10


def test_written_images_show_the_scene_of_their_context_labels(tmp_path):
    """After JPEG, in the dataset as trained on: every context label agrees with its image's banner colour."""
    cfg = SyntheticConfig(n_train=16, n_val=2, size=96)
    root = synthetic_dataset(cfg, tmp_path).parent
    names = list(SCENES)
    agreeing = 0
    for i in range(16):
        s = draw(cfg, "train", i)
        with Image.open(root / "images" / "train" / f"{i:06d}.jpg") as im:
            pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
        bx1, by1, bx2, by2 = s.banner
        inner = pixels[by1 + 1 : by2 - 1, bx1 + 1 : bx2 - 1].reshape(-1, 3).mean(0)  # JPEG blurs the border
        shown = int(np.argmin([np.abs(inner - rgb).sum() for rgb in SCENES.values()]))
        labels = np.loadtxt(root / "labels" / "train" / f"{i:06d}.txt", ndmin=2).reshape(-1, 5)
        for c in labels[:, 0].astype(int):
            if CLASSES[c].scene:
                assert CLASSES[c].scene == names[shown]
                agreeing += 1
    assert agreeing >= 5
