"""nas.weights: reading YOLOv5 v7.0 checkpoints (fixtures written by YOLOv5's own code) without running their
code, plain state dicts, nas's own checkpoints, and refusing everything else with one error line."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import pickletools
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

from nas.errors import NasError
from nas.model import build_model
from nas.weights import read_checkpoint, write_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
BEST = FIXTURES / "yolov5_tiny_v7.pt"  # train.py's final best.pt (strip_optimizer)
LAST = FIXTURES / "yolov5_tiny_v7_last.pt"  # train.py's per-epoch last.pt: model, ema, optimizer
TINY_YAML = FIXTURES / "yolov5_tiny.yaml"
ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "yolov5_tiny_v7_expected.pt")


def assert_same_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert torch.equal(got[k], v), k


def globals_in(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl"))
        return {arg for op, arg, _ in pickletools.genops(zf.read(pkl)) if op.name == "GLOBAL"}


def test_reads_yolov5_v7_best_pt_tensor_by_tensor(expected):
    ckpt = read_checkpoint(BEST)
    assert ckpt.format == "yolov5" and ckpt.weights_key == "model"
    assert ckpt.sha256 == hashlib.sha256(BEST.read_bytes()).hexdigest()
    assert_same_tensors(ckpt.state_dict, expected)
    assert ckpt.state_dict["model.0.conv.weight"].dtype == torch.float32  # fp16 in the file
    assert ckpt.state_dict["model.0.bn.num_batches_tracked"].dtype == torch.int64
    assert ckpt.yaml == {**yaml.safe_load(TINY_YAML.read_text()), "ch": 3}
    assert ckpt.nc == 3 and ckpt.names == ["person", "bicycle", "car"]
    assert ckpt.stride == [8.0, 16.0, 32.0]
    assert ckpt.anchors == ANCHORS  # from Detect's anchors buffer x stride
    assert "models" not in sys.modules  # YOLOv5's classes were never imported


def test_last_pt_weights_come_from_ema_as_train_py_reads_them(expected):
    ckpt = read_checkpoint(LAST)  # its 'model' differs from its 'ema' (see the fixture script)
    assert ckpt.format == "yolov5" and ckpt.weights_key == "ema"
    assert_same_tensors(ckpt.state_dict, expected)
    assert ckpt.names == ["person", "bicycle", "car"] and ckpt.stride == [8.0, 16.0, 32.0]


def test_yolov5_names_load_into_nas_model(expected):
    model = build_model(TINY_YAML)
    model.load_state_dict(read_checkpoint(BEST).state_dict, strict=True)
    assert torch.equal(model.model[24].m[0].weight, expected["model.24.m.0.weight"])


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "legacy"])
def test_plain_state_dict(tmp_path, expected, wrap):
    sd = {k: v.half() if v.is_floating_point() else v for k, v in expected.items()}
    path = tmp_path / "sd.pt"
    if wrap == "legacy":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(sd if wrap == "bare" else {wrap: sd, "epoch": 3}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.format == "state_dict" and ckpt.weights_key == ("" if wrap in ("bare", "legacy") else wrap)
    assert_same_tensors(ckpt.state_dict, expected)
    assert ckpt.yaml is None and ckpt.nc is None and ckpt.names is None


def test_shared_storage_views_are_read_as_views(tmp_path):
    base = torch.arange(12, dtype=torch.float32)
    torch.save({"a": base[2:8].view(2, 3), "b": base.view(3, 4).t()}, tmp_path / "v.pt")
    sd = read_checkpoint(tmp_path / "v.pt").state_dict
    assert torch.equal(sd["a"], base[2:8].view(2, 3)) and torch.equal(sd["b"], base.view(3, 4).t())


def test_nas_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY_YAML)
    path = write_checkpoint(model, tmp_path / "out" / "best.pt", names=["a", "b", "c"])
    ckpt = read_checkpoint(path)
    assert ckpt.format == "nas" and ckpt.weights_key == "model"
    want = {k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    assert_same_tensors(ckpt.state_dict, want)
    assert ckpt.names == ["a", "b", "c"] and ckpt.nc == 3 and ckpt.stride == [8.0, 16.0, 32.0]
    assert ckpt.anchors == ANCHORS and ckpt.yaml["backbone"] == model.yaml["backbone"]
    # the pickle names YOLOv5's classes, never nas's
    names = globals_in(path)
    assert {"models.yolo DetectionModel", "models.yolo Detect", "models.common C3", "models.common Conv",
            "models.common SPPF", "models.common Concat", "models.common Bottleneck"} <= names
    assert not [n for n in names if n.startswith("nas")]


def test_written_checkpoint_matches_train_py_final_layout(tmp_path):
    """The dict YOLOv5 v7.0 leaves after strip_optimizer; read with a stand-in `models` package."""
    path = write_checkpoint(build_model(TINY_YAML), tmp_path / "best.pt", names=["a", "b", "c"])
    code = f"""
import sys, types, torch
for mod in ("models", "models.yolo", "models.common"):
    sys.modules[mod] = types.ModuleType(mod)
for name in ("DetectionModel", "Detect"):
    setattr(sys.modules["models.yolo"], name, type(name, (torch.nn.Module,), {{}}))
for name in ("Conv", "C3", "Bottleneck", "SPPF", "Concat"):
    setattr(sys.modules["models.common"], name, type(name, (torch.nn.Module,), {{}}))
sys.modules["nas"] = None  # the file must not need nas
ckpt = torch.load({str(path)!r}, map_location="cpu", weights_only=False)
m = ckpt["model"]
print(sorted(ckpt), ckpt["epoch"], ckpt["ema"], ckpt["optimizer"], next(m.parameters()).dtype,
      any(p.requires_grad for p in m.parameters()), m.names, m.save, m.training)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == (
        "['best_fitness', 'date', 'ema', 'epoch', 'git', 'model', 'nas', 'opt', 'optimizer', 'updates'] -1 None "
        "None torch.float16 False {0: 'a', 1: 'b', 2: 'c'} [4, 6, 10, 14, 17, 20, 23] False").split()


def test_written_checkpoint_with_a_block(tmp_path):
    d = yaml.safe_load(TINY_YAML.read_text())
    d["head"].insert(len(d["head"]) - 1, [-1, 1, "SGE", [1024, 4]])
    d["head"][-1][0] = [17, 20, 24]
    model = build_model(d)
    path = write_checkpoint(model, tmp_path / "sge.pt", names=["a", "b", "c"])
    ckpt = read_checkpoint(path)
    assert "model.24.weight" in ckpt.state_dict and len(ckpt.state_dict) == len(model.state_dict())
    assert "blocks.sge SGE" in globals_in(path)  # importable wherever the blocks are registered


def test_write_checkpoint_refusals(tmp_path):
    model = build_model(TINY_YAML)
    with pytest.raises(NasError, match="2 class names for a model of nc=3"):
        write_checkpoint(model, tmp_path / "x.pt", names=["a", "b"])
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(NasError, match=r"--out .*dir\.pt is a folder"):
        write_checkpoint(model, tmp_path / "dir.pt", names=["a", "b", "c"])
    assert not (tmp_path / "x.pt").exists()


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Exec:
    def __reduce__(self):
        return exec, ("import pathlib; pathlib.Path('pwned').touch()",)


def test_pickle_with_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode(marker), "ema": None}, path)
    with pytest.raises(NasError) as e:
        read_checkpoint(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: refused to load: the pickle asks for {os.system.__module__}.system")
    assert "\n" not in msg
    assert not marker.exists()


def test_code_hidden_in_a_module_state_is_refused(tmp_path):
    conv = torch.nn.Conv2d(1, 1, 1)
    conv.payload = _Exec()  # an attribute of an otherwise allowed module
    torch.save({"model": conv}, tmp_path / "hidden.pt")
    with pytest.raises(NasError, match="refused to load: the pickle asks for builtins.exec"):
        read_checkpoint(tmp_path / "hidden.pt")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_unknown_class_is_refused(tmp_path):
    torch.save({"model": io.BytesIO(b"x")}, tmp_path / "cls.pt")
    with pytest.raises(NasError, match=r"refused to load: the pickle asks for _io\.BytesIO"):
        read_checkpoint(tmp_path / "cls.pt")


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    data = BEST.read_bytes()
    files = {
        "empty": (b"", "empty file"),
        "truncated": (data[: len(data) // 2], "truncated|damaged zip"),
        "random": (random.Random(0).randbytes(4096), "not a torch checkpoint"),
        "text": (TINY_YAML.read_bytes(), "not a torch checkpoint"),
        "plain_pickle": (pickle.dumps([1, 2, 3], protocol=2), "not a torch checkpoint"),
        "list": (None, r"holds a list, not a checkpoint"),
        "no_weights": (None, r"its 'model' entry is a dict with keys 'x'"),
    }
    out = {}
    for name, (raw, pattern) in files.items():
        path = tmp_path / f"{name}.pt"
        if name == "list":
            torch.save([torch.zeros(1)], path)
        elif name == "no_weights":
            torch.save({"model": {"x": 1}}, path)
        else:
            path.write_bytes(raw)
        out[name] = (path, pattern)
    zipped = tmp_path / "zipped.pt"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("readme.txt", "hello")
    out["zip_not_torch"] = (zipped, "not a valid torch checkpoint .*no data.pkl")
    out["missing"] = (tmp_path / "nope.pt", "checkpoint not found")
    out["folder"] = (tmp_path, "is a folder")
    return out


@pytest.mark.parametrize("case", ["empty", "truncated", "random", "text", "plain_pickle", "list", "no_weights",
                                  "zip_not_torch", "missing", "folder"])
def test_bad_files_are_one_error_naming_the_file(tmp_path, case):
    path, pattern = _bad_files(tmp_path)[case]
    with pytest.raises(NasError, match=pattern) as e:
        read_checkpoint(path)
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_truncated_storage_record_is_refused(tmp_path, expected):
    """A zip whose central directory is intact but whose tensor record is shorter than its tensor."""
    src = tmp_path / "sd.pt"
    torch.save({"w": torch.ones(100)}, src)
    bad = tmp_path / "short.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            raw = zin.read(info)
            zout.writestr(info.filename, raw[:40] if info.filename.endswith("/data/0") else raw)
    with pytest.raises(NasError, match="shorter than its 100 elements"):
        read_checkpoint(bad)
