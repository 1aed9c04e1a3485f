"""The memory check: an estimate made on the meta device, the memory available, and every command that
trains refusing a size that cannot fit before anything is allocated."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nas.cli import main
from nas.data import SyntheticConfig
from nas.errors import NasError
from nas.model import load_cfg
from nas.train import memory, train_and_evaluate
from nas.train.memory import available_memory, estimate_proxy_memory

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def test_activations_grow_with_pixels_and_batch():
    cfg = load_cfg("yolov5n")
    small = estimate_proxy_memory(cfg, 6, 128, 8, 32, 8)
    large = estimate_proxy_memory(cfg, 6, 256, 8, 32, 8)
    double = estimate_proxy_memory(cfg, 6, 128, 16, 32, 8)
    assert large.activations == pytest.approx(4 * small.activations, rel=0.05)  # 4x the pixels
    assert double.activations == 2 * small.activations and double.batch == 2 * small.batch
    assert small.model == large.model > 0
    assert small.images == (32 + 8) * 128 * 128 * 3


def test_images_past_the_cache_budget_are_not_counted(monkeypatch):
    monkeypatch.setattr(memory, "CACHE_BUDGET", 10 * 64 * 64 * 3)
    est = estimate_proxy_memory(load_cfg("yolov5n"), 6, 64, 8, 100, 10)
    assert est.images == 10 * 64 * 64 * 3  # the val split is cached, the train split is read lazily


def test_available_memory_takes_the_cgroup_limit_when_it_is_lower(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    monkeypatch.setattr(memory, "CGROUP", tmp_path)
    assert available_memory() == (600000, f"the cgroup's memory limit ({tmp_path / 'memory.max'})")
    (tmp_path / "memory.max").write_text("max\n")  # no limit: the kernel's MemAvailable
    free, source = available_memory()
    assert free > 600000 and source == "available memory (/proc/meminfo)"


def one_error_line(r, *words: str) -> str:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_search_refuses_a_size_that_cannot_fit_before_making_data_or_a_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["search", "--space", str(SPACES / "neck.yaml"), "--budget", "10gflops",
                                  "--imgsz", "100000", "--trials", "1"])
    line = one_error_line(r, "--imgsz 100000 --batch 8 does not fit in memory", "width 0.375", "GiB",
                          "use a smaller --imgsz or --batch")
    needed = float(line.split("needs about ")[1].split(" GiB")[0].replace(",", ""))
    assert needed > 10_000  # tens of TiB of activations, not a rounding of something small
    assert not (tmp_path / "studies").exists()


def test_evaluate_refuses_a_size_that_cannot_fit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["evaluate", "yolov5n", "--imgsz", "100000", "--epochs", "1"])
    one_error_line(r, "--imgsz 100000 --batch 8 does not fit in memory: training yolov5n needs about")


def test_evaluate_with_a_data_yaml_counts_its_images(coco8, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: (1 << 20, "a 1 MiB test limit"))
    r = CliRunner().invoke(main, ["evaluate", "yolov5n", "--data", str(coco8 / "coco8.yaml"), "--imgsz", "640",
                                  "--epochs", "1"])
    one_error_line(r, "--imgsz 640", "1 MiB test limit")
    est = estimate_proxy_memory(load_cfg("yolov5n"), 80, 640, 8, 4, 4)  # coco8: 4 train and 4 val images
    assert est.images == 8 * 640 * 640 * 3


def test_profile_counts_on_the_meta_device_at_any_size():
    r = CliRunner().invoke(main, ["profile", "yolov5n", "--imgsz", "100000"])
    assert r.exit_code == 0, r.output
    assert "GFLOPs at 100000x100000" in r.output


def test_a_search_candidate_that_cannot_fit_fails_as_a_trial(monkeypatch):
    """In a search the base was checked up front; a candidate that still cannot fit ends its own trial."""
    monkeypatch.setattr(memory, "available_memory", lambda: (1 << 20, "a 1 MiB test limit"))
    data = SyntheticConfig(n_train=8, n_val=4, size=64, nc=2)
    r = train_and_evaluate("yolov5n", data, epochs=1, imgsz=64, batch=2, too_big="fail")
    assert r.status == "failed" and "does not fit in memory" in r.reason and "1 MiB test limit" in r.reason
    with pytest.raises(NasError, match="--imgsz 64 --batch 2 does not fit in memory"):
        train_and_evaluate("yolov5n", data, epochs=1, imgsz=64, batch=2)


def test_profile_onnx_builds_for_real_so_it_checks_memory_first(tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    r = CliRunner().invoke(main, ["profile", "yolov5n", "--imgsz", "100000", "--onnx", str(out)])
    one_error_line(r, "--onnx: yolov5n at 100000x100000 does not fit in memory", "use a smaller --imgsz")
    assert not out.exists()
