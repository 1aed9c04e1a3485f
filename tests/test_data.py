"""Datasets: data YAML resolution, labels, letterbox, broken datasets, coco8, augmentation (synthetic data:
test_synthetic.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.data import (
    Augment,
    batches,
    clear_memory_cache,
    label_path,
    letterbox,
    load_data_yaml,
    load_split,
    parse_labels,
)
from nas.data.augment import color_jitter, hflip, hsv_gains, mosaic, random_affine
from nas.data.batches import training_sample
from nas.errors import NasError

COCO8 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "coco8"


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    clear_memory_cache()
    yield
    clear_memory_cache()


def write_image(path: Path, w: int = 40, h: int = 30, colour=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), colour).save(path)


def make_dataset(root: Path, n_train: int = 3, n_val: int = 2) -> Path:
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            write_image(root / "images" / split / f"{i}.png", 40 + 10 * i, 30)
            lp = root / "labels" / split / f"{i}.txt"
            lp.parent.mkdir(parents=True, exist_ok=True)
            lp.write_text("0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.1 0.1\n")
    y = root / "data.yaml"
    y.write_text("path:\ntrain: images/train\nval: images/val\nnames: [a, b]\n")
    return y


def test_label_path_replaces_the_last_images_folder():
    p = Path("/d/images/x/images/train/a.b.jpg")
    assert label_path(p) == Path("/d/images/x/labels/train/a.b.txt")


def test_data_yaml_resolution(tmp_path):
    y = make_dataset(tmp_path / "ds")
    spec = load_data_yaml(y)
    assert spec.names == ["a", "b"] and spec.nc == 2
    assert spec.train == [(tmp_path / "ds" / "images" / "train").resolve()]
    # relative path: against the YAML's folder; names as a mapping; a .txt list with ./ entries
    (tmp_path / "ds" / "train.txt").write_text("./images/train/0.png\n./images/train/1.png\n")
    y2 = tmp_path / "ds" / "cfg" / "d.yaml"
    y2.parent.mkdir()
    y2.write_text("path: ..\ntrain: train.txt\nval: [images/val]\nnames: {0: a, 1: b}\n")
    spec2 = load_data_yaml(y2)
    assert spec2.names == ["a", "b"]
    train = load_split(spec2, "train", 64)
    assert [f.name for f in train.files] == ["0.png", "1.png"]
    # a folder holding data.yaml works too; nc without names gives class0..
    y3 = tmp_path / "nc.yaml"
    y3.write_text(f"path: {tmp_path / 'ds'}\ntrain: images/train\nval: images/val\nnc: 3\n")
    assert load_data_yaml(y3).names == ["class0", "class1", "class2"]
    assert load_data_yaml(tmp_path / "ds").nc == 2


@pytest.mark.parametrize(
    "text, words",
    [
        ("path:\nval: images/val\nnames: [a]\n", "no 'train:'"),
        ("path:\ntrain: images/train\nval: images/val\n", "names"),
        ("path:\ntrain: images/train\nval: images/val\nnames: [a, b]\nnc: 3\n", "nc is 3"),
        ("path:\ntrain: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_data_yaml(tmp_path, text, words):
    y = tmp_path / "bad.yaml"
    y.write_text(text)
    with pytest.raises(NasError, match=words.replace("(", r"\(")):
        load_data_yaml(y)


def test_missing_things_are_one_clear_error(tmp_path):
    with pytest.raises(NasError, match="data YAML not found"):
        load_data_yaml(tmp_path / "nope.yaml")
    y = make_dataset(tmp_path / "ds")
    y.write_text("path:\ntrain: images/train\nval: images/missing\nnames: [a, b]\n")
    with pytest.raises(NasError) as e:
        load_split(load_data_yaml(y), "val", 64)
    assert "images/missing" in str(e.value) and "val" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "ds" / "images" / "empty").mkdir()
    y.write_text("path:\ntrain: images/train\nval: images/empty\nnames: [a, b]\n")
    with pytest.raises(NasError, match="val split is empty"):
        load_split(load_data_yaml(y), "val", 64)


def test_parse_labels_skips_bad_lines(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text(
        "0 0.5 0.5 0.2 0.2\n"  # good
        "0 0.5 0.5 0.2\n"  # 4 values
        "a 0.5 0.5 0.2 0.2\n"  # not numbers
        "7 0.5 0.5 0.2 0.2\n"  # class out of range
        "1 10 20 30 40\n"  # pixels, not normalised
        "1 0.5 0.5 0 0.2\n"  # empty box
        "\n"
        "1 0.1 0.1 0.2 0.2000001\n"  # a hair outside: clipped, kept
        "0 0.5 0.5 0.2 0.2\n"  # duplicate: dropped
        "1 0.1 0.1 0.3 0.1 0.3 0.3\n"  # polygon -> box
    )
    lb, problems = parse_labels(p, nc=2)
    assert [(q.line, q.kind) for q in problems] == [(2, "columns"), (3, "number"), (4, "class"), (5, "box"), (6, "box")]
    assert str(problems[0]) == "x.txt:2 has 4 values, expected 5"
    assert lb.shape == (3, 5)
    assert lb[2].tolist() == pytest.approx([1, 0.2, 0.2, 0.2, 0.2])
    assert lb[:, 1:].min() >= 0 and (lb[:, 1:3] + lb[:, 3:5] / 2).max() <= 1
    assert parse_labels(tmp_path / "missing.txt", 2)[0].shape == (0, 5)


def test_broken_dataset_is_skipped_with_one_warning(tmp_path, caplog):
    y = make_dataset(tmp_path / "ds", n_train=4)
    (tmp_path / "ds" / "images" / "train" / "bad.jpg").write_bytes(b"\xff\xd8\xff not a jpeg at all")
    (tmp_path / "ds" / "images" / "train" / "trunc.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (tmp_path / "ds" / "labels" / "train" / "1.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5\nz\n")
    (tmp_path / "ds" / "labels" / "train" / "2.txt").unlink()  # no label file: a background image
    with caplog.at_level(logging.WARNING, logger="nas.data"):
        train = load_split(load_data_yaml(y), "train", 64)
    assert [f.name for f in train.files] == ["0.png", "2.png", "3.png"]  # 1.png: its label file is corrupt
    assert train.skipped == {"images": 2, "label_files": 1, "label_lines": 2}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert "2 corrupt image(s)" in msg and "1 image(s) with a corrupt label file" in msg and "2 bad line(s)" in msg
    assert "bad.jpg" in msg and "1.txt:2" in msg
    assert len(train.labels[0]) == 2 and len(train.labels[1]) == 0  # 2.png has no label file: a background image
    # every image corrupt -> a clear error, not a crash
    for f in (tmp_path / "ds" / "images" / "val").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(NasError, match="no readable images"):
        load_split(load_data_yaml(y), "val", 64)


def write_labels(root: Path, split: str, lines: dict[str, str]) -> None:
    for name, text in lines.items():
        (root / "labels" / split / f"{name}.txt").write_text(text)


@pytest.mark.parametrize(
    "line, why, fix",
    [
        ("0 0.5 0.5 0.2", "has 4 values, expected 5", "one 'class cx cy w h' line per object"),
        ("2 0.5 0.5 0.2 0.2", "class 2 not in 0..1", "class ids 0..1"),
        ("1 120 80 40 30", "box reaches outside 0..1", "normalise boxes by the image size"),
        ("1 -0.5 0.5 0.2 0.2", "box reaches outside 0..1", "normalise boxes"),
        ("1 0.5 0.5 -0.2 0.2", "box is empty", "normalise boxes"),
        ("cat 0.5 0.5 0.2 0.2", "not numbers: 'cat 0.5", "numbers only"),
        ("1 0.5 nan 0.2 0.2", "has a value that is not finite", "numbers only"),
    ],
)
def test_a_split_of_invalid_labels_is_one_error(tmp_path, line, why, fix):
    """Every label line invalid: not a model scored on nothing, but one line naming split, file:line, why, fix."""
    y = make_dataset(tmp_path / "ds", n_val=3)
    write_labels(tmp_path / "ds", "val", {"0": f"{line}\n", "1": f"{line}\n{line}\n", "2": ""})
    assert len(load_split(load_data_yaml(y), "train", 64)) == 3  # the train split is fine
    with pytest.raises(NasError) as e:
        load_split(load_data_yaml(y), "val", 64)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("val split")
    assert str(tmp_path / "ds" / "labels" / "val") in msg and str(y) in msg
    assert f"0.txt:1 {why}" in msg and f"1.txt:1 {why}" in msg and "1.txt:2" in msg
    assert "3 bad line(s) in 2 file(s)" in msg
    assert fix in msg.split("; fix: ")[1]


def test_the_first_bad_lines_and_every_fix_are_named(tmp_path):
    y = make_dataset(tmp_path / "ds", n_val=2)
    write_labels(tmp_path / "ds", "val", {"0": "0 0.5 0.5 0.2\n5 0.5 0.5 0.1 0.1\n", "1": "0 10 10 5 5\nx\n0 1\n"})
    with pytest.raises(NasError) as e:
        load_split(load_data_yaml(y), "val", 64)
    msg = str(e.value)
    assert "0.txt:1 has 4 values" in msg and "0.txt:2 class 5 not in 0..1" in msg and "1.txt:1 box" in msg
    assert "and 2 more" in msg and "1.txt:2" not in msg
    for fix in ("one 'class cx cy w h' line", "class ids 0..1", "normalise boxes", "numbers only"):
        assert fix in msg


def test_some_corrupt_label_files_drop_their_images_with_a_warning(tmp_path, caplog):
    """As in YOLOv5: an image whose label file has a bad line is left out; valid images still train."""
    y = make_dataset(tmp_path / "ds", n_train=4)
    write_labels(tmp_path / "ds", "train", {"1": "0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n", "3": "0 0.5 0.5\n"})
    with caplog.at_level(logging.WARNING, logger="nas.data"):
        train = load_split(load_data_yaml(y), "train", 64)
    assert [f.name for f in train.files] == ["0.png", "2.png"]
    assert [len(lb) for lb in train.labels] == [2, 2]
    assert train.skipped == {"images": 0, "label_files": 2, "label_lines": 2}
    (msg,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "1.txt:2 class 3 not in 0..1" in msg and "3.txt:1 has 3 values" in msg
    # every image whose labels are valid is a background image: nothing left to learn -> the error
    write_labels(tmp_path / "ds", "train", {"0": "", "2": "\n"})
    with pytest.raises(NasError, match=r"train split .* has no valid label: 2 bad line\(s\) in 2 file\(s\)"):
        load_split(load_data_yaml(y), "train", 64)


def test_a_split_without_any_label_is_an_error(tmp_path):
    """Missing or empty label files are background images; a split of nothing but those is a mistake."""
    y = make_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "labels" / "val" / "0.txt").write_text("")
    (tmp_path / "ds" / "labels" / "val" / "1.txt").unlink()
    with pytest.raises(NasError) as e:
        load_split(load_data_yaml(y), "val", 64)
    assert "val split" in str(e.value) and "no labels" in str(e.value)
    assert str(tmp_path / "ds" / "labels" / "val" / "0.txt") in str(e.value)


def test_cli_evaluate_on_invalid_labels_exits_2_with_one_error_line(tmp_path):
    from click.testing import CliRunner

    from nas.cli import main

    y = make_dataset(tmp_path / "ds", n_train=2, n_val=2)
    write_labels(tmp_path / "ds", "train", {"0": "0 12 8 4 6\n", "1": "1 30 20 10 10\n0 5 5 2 2\n"})
    r = CliRunner().invoke(main, ["evaluate", "yolov5n", "--data", str(y), "--epochs", "1", "--imgsz", "64"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: train split"), lines
    assert "0.txt:1 box reaches outside 0..1" in lines[0] and "normalise boxes" in lines[0]
    assert "Traceback" not in r.output and r.stdout == ""


def test_letterbox_geometry():
    im = Image.new("RGB", (100, 50), (10, 200, 10))
    arr, ratio, pad = letterbox(im, 64)
    assert arr.shape == (64, 64, 3) and ratio == (0.64, 0.64) and pad == (0, 16)
    assert (arr[:16] == 114).all() and (arr[48:] == 114).all()
    assert (arr[16:48] == (10, 200, 10)).all()
    small = Image.new("RGB", (16, 32), (0, 0, 0))
    arr, ratio, pad = letterbox(small, 64)  # scaled up to 32 x 64
    assert ratio == (2.0, 2.0) and pad == (16, 0)


def test_loaded_labels_follow_the_letterbox(tmp_path):
    y = make_dataset(tmp_path / "ds")
    train = load_split(load_data_yaml(y), "train", 64)
    i = 1  # a 50 x 30 image: ratio 1.28, 64 x 38, top pad 13
    assert train.shapes0[i] == (30, 50) and train.pads[i] == (0, 13)
    cls, cx, cy, w, h = train.labels[i][0]
    assert (cx, cy, w, h) == pytest.approx((0.5, (0.5 * 38 + 13) / 64, 0.25, 0.5 * 38 / 64))
    assert train.boxes0(i)[0].tolist() == pytest.approx([0, 18.75, 7.5, 31.25, 22.5])
    # batches: uint8 images, targets with the image index in the batch
    b = next(batches(train, 2))
    assert b.images.shape == (2, 64, 64, 3) and b.images.dtype == np.uint8 and b.hsv is None
    assert b.targets[:, 0].tolist() == [0, 0, 1, 1] and b.indices.tolist() == [0, 1]
    b = next(batches(train, 2, np.random.default_rng(0), Augment()))
    assert b.hsv.shape == (2, 3) and len(b.targets) == 4


def test_memory_cache_reuses_a_loaded_split(tmp_path):
    y = make_dataset(tmp_path / "ds")
    a = load_split(load_data_yaml(y), "train", 64)
    assert load_split(load_data_yaml(y), "train", 64) is a
    assert load_split(load_data_yaml(y), "train", 96) is not a
    os.utime(a.files[0], ns=(1, 1))  # changed file -> reloaded
    assert load_split(load_data_yaml(y), "train", 64) is not a


def test_coco8():
    if not COCO8.is_dir():
        pytest.skip(f"{COCO8} is absent: the shared 8-image COCO subset lives beside the checkout")
    spec = load_data_yaml(COCO8 / "coco8.yaml")
    assert spec.nc == 80 and spec.names[0] == "person"
    val = load_split(spec, "val", 128)
    assert len(val) == 4 and val.images.shape == (4, 128, 128, 3)
    assert val.skipped == {"images": 0, "label_files": 0, "label_lines": 0}
    for i, f in enumerate(val.files):
        lines = [x for x in label_path(f).read_text().splitlines() if x.strip()]
        assert len(val.labels0[i]) == len(set(lines))
        h, w = val.shapes0[i]
        with Image.open(f) as im:
            assert im.size == (w, h)
        b = val.boxes0(i)
        assert (b[:, 1] >= 0).all() and (b[:, 3] <= w + 1e-3).all() and (b[:, 4] <= h + 1e-3).all()
    assert (val.images[:, 0, 0] == 114).all() or (val.images[:, :, 0] == 114).any()


def test_augmentations_keep_labels_consistent():
    rng = np.random.default_rng(0)
    im = np.zeros((64, 64, 3), np.uint8)
    im[10:20, 40:60] = 255
    lb = np.array([[1, 50 / 64, 15 / 64, 20 / 64, 10 / 64]], np.float32)
    fim, flb = hflip(im, lb)
    assert (fim[10:20, 4:24] == 255).all() and flb[0, 1] == pytest.approx(14 / 64)
    g = hsv_gains((0.015, 0.7, 0.4), np.random.default_rng(5))
    assert (g == hsv_gains((0.015, 0.7, 0.4), np.random.default_rng(5))).all()
    assert abs(g[0] - 1) <= 0.015 and abs(g[1] - 1) <= 0.7 and abs(g[2] - 1) <= 0.4
    canvas, mlb = mosaic([im] * 4, [lb] * 4, 64, rng)
    assert canvas.shape == (128, 128, 3) and len(mlb) >= 1
    out, alb = random_affine(canvas, mlb, 64, 0.5, 0.1, rng)
    assert out.shape == (64, 64, 3)
    if len(alb):
        assert alb[:, 1:].min() >= 0 and (alb[:, 1:3] + alb[:, 3:5] / 2).max() <= 1 + 1e-6


def test_color_jitter():
    import torch

    x = torch.tensor([[[204, 102, 51], [128, 128, 128]]], dtype=torch.uint8)[None]  # orange, gray: (1, 1, 2, 3)
    f = x.permute(0, 3, 1, 2).float() / 255

    def jit(h, s, v):
        return color_jitter(x, torch.tensor([[h, s, v]]))

    assert jit(1, 1, 1).shape == (1, 3, 1, 2) and jit(1, 1, 1).is_contiguous()
    assert torch.allclose(jit(1, 1, 1), f, atol=1e-6)
    assert torch.allclose(jit(1, 1, 0.5), f * 0.5, atol=1e-6)
    grayer = jit(1, 0.5, 1)  # HSV saturation halves: the max stays, the gaps to it halve
    assert torch.allclose(grayer[0, :, 0, 0], torch.tensor([204, 153, 127.5]) / 255, atol=1e-6)
    turned = jit(1.01, 1, 1)  # a hue rotation leaves gray alone
    assert torch.allclose(turned[0, :, 0, 1], f[0, :, 0, 1], atol=1e-6)
    assert not torch.allclose(turned[0, :, 0, 0], f[0, :, 0, 0], atol=1e-3)
    assert turned.min() >= 0 and turned.max() <= 1 and jit(1, 1.7, 1.4).max() <= 1


def test_training_samples_are_a_function_of_the_seed(tmp_path):
    y = make_dataset(tmp_path / "ds", n_train=4)
    train = load_split(load_data_yaml(y), "train", 64)
    aug = Augment(mosaic=0.5, scale=0.3, translate=0.1)

    def run(seed):
        rng = np.random.default_rng(seed)
        return [training_sample(train, i, aug, rng) for i in range(4)]

    a, b, c = run(1), run(1), run(2)
    assert all(
        (x[0] == y[0]).all() and np.array_equal(x[1], y[1]) and np.array_equal(x[2], y[2])
        for x, y in zip(a, b, strict=True)
    )
    assert any(not (x[0] == z[0]).all() for x, z in zip(a, c, strict=True))
