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


# ------------------------------------------------------------- the CLI: export-best --onnx and profile --onnx

import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import yaml  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from nas import storage as S  # noqa: E402
from nas.cli import main  # noqa: E402
from nas.cost import count  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
STUDY_IMGSZ = [96, 128]  # h x w: a non-square input reaches the ONNX file too
# yolov5n, width 0.125, with SGE(groups=4) after the P4 C3 (layer 6): later indices +1
SGE_CFG = yaml.safe_load((Path(__file__).resolve().parents[1] / "nas" / "model" / "cfg" / "yolov5n.yaml").read_text())
SGE_CFG.update(nc=3, width_multiple=0.125)
SGE_CFG["backbone"].insert(7, [-1, 1, "SGE", [512, 4]])
for row in SGE_CFG["head"]:
    if isinstance(row[0], list):
        row[0] = [f + 1 if f >= 7 else f for f in row[0]]
SGE_TEXT = yaml.safe_dump(SGE_CFG, sort_keys=False)


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(r) -> str:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output
    return lines[0]


@pytest.fixture
def study_dir(tmp_path, monkeypatch) -> Path:
    """A study of one trained trial (yolov5n w0.125 + SGE at 96x128) in studies/nas.db under the test's folder."""
    monkeypatch.chdir(tmp_path)
    cost = count(build_model(yaml.safe_load(SGE_TEXT), device="meta"), imgsz=tuple(STUDY_IMGSZ))
    attrs = {"space_path": "search_spaces/neck.yaml", "base": "yolov5n", "imgsz": STUDY_IMGSZ,
             "budget": {"gflops": 1.0, "params": None}, "nas_version": "0.1.0", "points": ["p4"],
             "proxy": {"data": "synthetic", "epochs": 1, "imgsz": 64, "batch": 4, "seed": 0, "synthetic": [8, 4]}}
    study = S.create_or_resume("sqlite:///studies/nas.db", "neck", space_hash="0123456789abcdef", attrs=attrs,
                               sampler=None)
    user = {"choices": {"p4": "SGE(groups=4)"}, "model_yaml": SGE_TEXT, "gflops": float(cost.gflops),
            "params": int(cost.params), "fitness": 0.3, "mAP50": 0.5, "mAP50-95": 0.28, "baseline": False,
            "over_budget": False, "arch": {"depth_multiple": 0.33, "width_multiple": 0.125, "choices": {}}}
    study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.3, float(cost.gflops)], user_attrs=user,
                                 constraints={"gflops": float(cost.gflops) - 1.0}))
    return tmp_path


def written(folder: Path) -> list[str]:
    """Files the command left in the test's folder (the study's own folder aside)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "studies")


def test_export_best_onnx_writes_the_yamls_model_and_onnxruntime_runs_it(study_dir):
    r = cli("export-best", "--out", "best.yaml", "--onnx", "best.onnx")
    assert r.exit_code == 0, r.output
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("wrote best.onnx (") and "ONNX opset 17, torchscript exporter, batch 1 at 96x128" in line
    assert "matches torch to" in line and "(tolerance atol=0.0001, rtol=0.001)" in line
    assert written(study_dir) == ["best.onnx", "best.yaml"]
    # the ONNX file is the model best.yaml builds (with the same seeded weights), at the study's imgsz
    model = onnx_export.build_seeded(str(study_dir / "best.yaml")).eval()
    x = onnx_export.seeded_input((96, 128), seed=1)
    got = onnx_export.run_onnxruntime(study_dir / "best.onnx", x.numpy())
    with torch.no_grad():
        want = model(x)[0].numpy()
    assert got.shape == (1, 3 * (12 * 16 + 6 * 8 + 3 * 4), 3 + 5)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)
    assert any(info.block == "SGE" for info in model.layers_info)

    r = cli("export-best", "--out", "again.yaml", "--onnx", "again.onnx", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["trial"] == 0 and doc["imgsz"] == STUDY_IMGSZ and doc["path"] == "again.yaml"
    o = doc["onnx"]
    assert o["path"] == "again.onnx" and o["passed"] and o["opset"] == 17 and o["exporter"] == "torchscript"
    assert o["size_bytes"] == (study_dir / "again.onnx").stat().st_size and o["max_abs_error"] < 1e-4
    assert o["output_shape"] == list(got.shape)
    # seeded: the same weights every time, so the same bytes
    assert (study_dir / "again.onnx").read_bytes() == (study_dir / "best.onnx").read_bytes()
    assert json.loads(cli("export-best", "--out", "plain.yaml", "--json").stdout)["onnx"] is None


def test_export_best_onnx_mismatch_writes_neither_file(study_dir, monkeypatch):
    real = onnx_export.run_onnxruntime
    monkeypatch.setattr(onnx_export, "run_onnxruntime", lambda path, x, threads=1: real(path, x, threads) + 1e-2)
    msg = one_error(cli("export-best", "--out", "best.yaml", "--onnx", "best.onnx"))
    assert "ONNX export of trial 0 of study 'neck' (SGE at layer 7) differs from torch by 0.01" in msg
    assert "the file was not written" in msg
    assert written(study_dir) == []


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["folder", "fifo", "file-as-folder", "cannot-create", "same-as-out"])
def test_export_best_unwritable_onnx_path_is_refused_before_any_work(study_dir, monkeypatch, kind):
    import nas.export

    def no_work(*a, **k):
        raise AssertionError("the trial was read before the --onnx path was checked")

    monkeypatch.setattr(nas.export, "select_trial", no_work)
    (study_dir / "notes.txt").write_text("a regular file\n")
    target, needle = {
        "folder": (study_dir / "out.onnx", "is a folder"),
        "fifo": (study_dir / "out.onnx", "is a FIFO (named pipe)"),
        "file-as-folder": (study_dir / "notes.txt" / "out.onnx", "notes.txt is not a folder"),
        "cannot-create": (Path("/proc/nas-no-such-folder/out.onnx"), "cannot write --onnx"),
        "same-as-out": (study_dir / "best.yaml", "--onnx and --out both name"),
    }[kind]
    if kind == "folder":
        target.mkdir()
    elif kind == "fifo":
        _fifo(target)
    before = written(study_dir)
    msg = one_error(cli("export-best", "--out", "best.yaml", "--onnx", target))
    assert needle in msg and str(target) in msg
    assert written(study_dir) == before and not (study_dir / "best.yaml").exists()
    assert not Path("/proc/nas-no-such-folder").exists()


def test_export_best_onnx_without_onnxruntime_fails_before_any_work(study_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails, find_spec finds nothing
    msg = one_error(cli("export-best", "--out", "best.yaml", "--onnx", "best.onnx"))
    assert msg == "error: --onnx needs onnx and onnxruntime: pip install 'nas[onnx]'"
    assert written(study_dir) == []


def test_profile_onnx_builtin_and_yaml_with_a_block(tmp_path):
    out = tmp_path / "n.onnx"
    r = cli("profile", "yolov5n", "--imgsz", "64", "--nc", "2", "--onnx", out)
    assert r.exit_code == 0, r.output
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith(f"wrote {out} (") and "batch 1 at 64x64" in last
    assert onnx_export.run_onnxruntime(out, onnx_export.seeded_input((64, 64)).numpy()).shape == (1, 252, 7)

    cfg = tmp_path / "sge.yaml"
    cfg.write_text(SGE_TEXT)
    r = cli("profile", cfg, "--imgsz", "64x96", "--json", "--onnx", tmp_path / "sge.onnx")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # stdout is the JSON document only
    assert doc["onnx"]["passed"] and doc["onnx"]["output_shape"] == [1, 3 * (8 * 12 + 4 * 6 + 2 * 3), 8]
    assert doc["onnx"]["size_bytes"] == (tmp_path / "sge.onnx").stat().st_size
    model = onnx_export.build_seeded(str(cfg)).eval()
    x = onnx_export.seeded_input((64, 96), seed=3)
    with torch.no_grad():
        want = model(x)[0].numpy()
    np.testing.assert_allclose(onnx_export.run_onnxruntime(tmp_path / "sge.onnx", x.numpy()), want,
                               atol=1e-4, rtol=1e-3)
    assert doc["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None, reason="the dynamo exporter needs onnxscript")
def test_profile_onnx_dynamo_defaults_to_opset_18(tmp_path):
    r = cli("profile", "yolov5n", "--imgsz", "64", "--nc", "2", "--onnx", tmp_path / "n.onnx", "--onnx-exporter",
            "dynamo", "--json")
    assert r.exit_code == 0, r.output
    o = json.loads(r.stdout)["onnx"]
    assert o["exporter"] == "dynamo" and o["opset"] == 18 and o["passed"]


def test_profile_onnx_bad_input(tmp_path, monkeypatch):
    folder = tmp_path / "dir.onnx"
    folder.mkdir()
    fifo = _fifo(tmp_path / "pipe.onnx")
    assert "is a folder" in one_error(cli("profile", "yolov5n", "--onnx", folder))
    assert "is a FIFO" in one_error(cli("profile", "yolov5n", "--onnx", fifo))
    assert "cannot write --onnx" in one_error(cli("profile", "yolov5n", "--onnx", "/proc/nas-x/n.onnx"))
    assert "70" in one_error(cli("profile", "yolov5n", "--imgsz", "70", "--onnx", tmp_path / "n.onnx"))
    assert "0 is not in the range x>=7" in one_error(cli("profile", "yolov5n", "--onnx", tmp_path / "n.onnx",
                                                         "--onnx-opset", "0"))
    msg = one_error(cli("profile", "yolov5n", "--imgsz", "64", "--onnx", tmp_path / "n.onnx", "--onnx-opset", "99"))
    assert "failed in the torchscript exporter (opset 99)" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx", "pipe.onnx"]

