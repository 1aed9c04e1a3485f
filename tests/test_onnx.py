"""ONNX export: every registered block, inserted where the shipped spaces put it, exports and runs in onnxruntime
with the torch model's predictions; folders, missing packages, export failures and mismatches are refused."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("onnx", reason="the optional onnx extra (pip install 'nas[onnx]') is not installed")
pytest.importorskip("onnxruntime", reason="the optional onnx extra (pip install 'nas[onnx]') is not installed")

import nas.onnx_export as onnx_export  # noqa: E402
from nas.errors import NasError  # noqa: E402
from nas.model import build_model  # noqa: E402
from nas.onnx_export import export_onnx  # noqa: E402
from nas.space import Architecture, load_space, render  # noqa: E402

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
IMGSZ = (128, 128)


def tiny(space: str, block: str, width: float = 0.125, **hp) -> nn.Module:
    """yolov5n (depth 0.33) from a shipped space with `block` at every point that offers it, 3 classes."""
    s = load_space(SPACES / f"{space}.yaml")
    choices = {p.name: {"block": block, **hp} if block in p.blocks else {"block": p.blocks[0]} for p in s.points}
    torch.manual_seed(0)
    return build_model(render(s, Architecture(0.33, width, choices)), nc=3)


# the hyperparameters the shipped spaces try (search_spaces/*.yaml), at their largest where it matters
CASES = {
    "base": ("neck", "none", {}),
    "SGE": ("neck", "SGE", {"groups": 16}),
    "GE-global": ("neck", "GE", {"extent": "global", "param_gather": True, "excite_mlp": True}),
    "GE-4": ("neck", "GE", {"extent": 4, "param_gather": True, "excite_mlp": True}),
    "FLA": ("neck", "FLA", {"num_heads": 4, "focusing_factor": 3, "kernel_size": 5}),
    "BiFormer": ("neck", "BiFormer", {"num_heads": 4, "n_win": 8, "topk": 4, "side_dwconv": 3}),
    "FocalModulation": ("sppf", "FocalModulation", {"focal_level": 3, "focal_window": 5, "focal_factor": 2}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_block_exports_and_matches_in_onnxruntime(tmp_path, case):
    space, block, hp = CASES[case]
    model = tiny(space, block, **hp)
    assert block == "none" or any(info.block == block for info in model.layers_info)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = tmp_path / "m.onnx"
    r = export_onnx(model, IMGSZ, out)
    assert model.training  # the caller's model is untouched: a copy was exported
    assert r.passed and r.exporter == "torchscript" and r.opset == 17 and r.max_rel_error < 1e-3
    # scores (obj, cls in [0, 1]) to 1e-4 absolute; boxes (pixels, up to a few hundred) to 1e-4 relative
    x = onnx_export.seeded_input(IMGSZ)
    got = torch.from_numpy(onnx_export.run_onnxruntime(out, x.numpy()))
    with torch.no_grad():
        want = model.eval()(x)[0]
    torch.testing.assert_close(got[..., 4:], want[..., 4:], atol=1e-4, rtol=0)
    torch.testing.assert_close(got[..., :4], want[..., :4], atol=1e-4, rtol=1e-4)
    model.train()
    assert r.output_shape == (1, 3 * (16 * 16 + 8 * 8 + 4 * 4), 3 + 5)
    assert out.is_file() and r.size_bytes == out.stat().st_size > 100_000
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not list(tmp_path.glob(".*"))  # no temp file left beside it


def test_biformer_with_padded_regions_exports(tmp_path):
    """160 px: P4 10x10 and P5 5x5 do not split into n_win=4 regions evenly, so q/k/v are padded and the padded
    keys masked with -inf, an op sequence the 128 px case never reaches."""
    model = tiny("neck", "BiFormer", num_heads=2, n_win=4, topk=4, side_dwconv=3)
    r = export_onnx(model, (160, 160), tmp_path / "m.onnx")
    assert r.passed and r.max_rel_error < 1e-3


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None,
                    reason="the dynamo exporter needs onnxscript (part of the onnx extra), not installed")
def test_dynamo_exporter_matches_at_opset_18(tmp_path):
    """One export (the dynamo exporter takes ~5 s each): every layer type of the base model plus FLA, GE and
    BiFormer on the neck outputs."""
    s = load_space(SPACES / "neck.yaml")
    choices = {"P3": {"block": "FLA", **CASES["FLA"][2]}, "P4": {"block": "GE", **CASES["GE-4"][2]},
               "P5": {"block": "BiFormer", **CASES["BiFormer"][2]}}
    torch.manual_seed(0)
    model = build_model(render(s, Architecture(0.33, 0.125, choices)), nc=3)
    r = export_onnx(model, IMGSZ, tmp_path / "m.onnx", dynamo=True, opset=18)
    assert r.passed and r.exporter == "dynamo" and r.opset == 18 and r.max_rel_error < 1e-3


def test_a_folder_is_refused(tmp_path):
    (tmp_path / "out.onnx").mkdir()
    with pytest.raises(NasError, match=r"--onnx .*out.onnx is a folder"):
        export_onnx(tiny("neck", "none"), IMGSZ, tmp_path / "out.onnx")


@pytest.mark.parametrize("missing, dynamo, message", [
    ("onnxruntime", False, "--onnx needs onnx and onnxruntime: pip install 'nas[onnx]'"),
    ("onnx", True, "--onnx needs onnx and onnxruntime: pip install 'nas[onnx]'"),
    ("onnxscript", True, "--onnx with the dynamo exporter also needs onnxscript: pip install 'nas[onnx]'"),
])
def test_missing_packages_name_the_install_command(monkeypatch, tmp_path, missing, dynamo, message):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    with pytest.raises(NasError) as e:
        export_onnx(tiny("neck", "none"), IMGSZ, tmp_path / "m.onnx", dynamo=dynamo)
    assert str(e.value) == message
    assert not list(tmp_path.iterdir())


def test_zero_tolerance_is_a_mismatch_and_writes_nothing(tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(NasError, match=r"^ONNX export of .* differs from torch by [0-9.e-]+ \(tolerance atol=0, "
                                       r"rtol=0.*\) at .*m\.onnx; the file was not written"):
        export_onnx(tiny("neck", "SGE", groups=4), IMGSZ, out, atol=0, rtol=0)
    assert not out.exists() and not list(tmp_path.iterdir())
    r = export_onnx(tiny("neck", "SGE", groups=4), IMGSZ, out, atol=0, rtol=0, strict=False)
    assert not r.passed and r.max_abs_error > 0 and out.is_file()  # strict=False: written, reported failed


def test_one_wrong_element_is_detected(monkeypatch, tmp_path):
    real = onnx_export.run_onnxruntime

    def off_by_a_little(path, x, threads=1):
        y = real(path, x, threads)
        y[0, 123, 4] += 2e-3  # one objectness score (a value in [0, 1]) off by 0.2 %
        return y

    monkeypatch.setattr(onnx_export, "run_onnxruntime", off_by_a_little)
    with pytest.raises(NasError, match="differs from torch by 0.002"):
        export_onnx(tiny("neck", "none"), IMGSZ, tmp_path / "m.onnx")


class Cummax(nn.Module):
    """A layer with an op the torchscript exporter cannot translate (aten::cummax at opset 17)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.i, self.f, self.type, self.np = inner.i, inner.f, "Cummax", inner.np

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return torch.cummax(y, dim=1).values


def test_an_unexportable_layer_names_the_exporter_and_the_error(tmp_path):
    model = tiny("neck", "SGE", groups=4)
    k = next(info.i for info in model.layers_info if info.block == "SGE")
    model.model[k] = Cummax(model.model[k])
    with pytest.raises(NasError) as e:
        export_onnx(model, IMGSZ, tmp_path / "m.onnx")
    msg = str(e.value)
    assert "\n" not in msg and "SGE at layer" in msg
    assert "failed in the torchscript exporter (opset 17): UnsupportedOperatorError: Exporting the operator " \
           "'aten::cummax' to ONNX opset version 17 is not supported" in msg
    assert not (tmp_path / "m.onnx").exists()


def test_nas_imports_no_onnx_package_at_module_level():
    code = ("import sys, nas.onnx_export, nas.cli, nas.space, nas.model, blocks; "
            "print([m for m in ('onnx', 'onnxruntime', 'onnxscript') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
