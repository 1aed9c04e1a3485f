"""nas.yolov5_register on a stand-in YOLOv5 checkout (written here; YOLOv5 itself is never a dependency): its
models/yolo.py resolves module names and string arguments with `eval` in its own namespace, as v7.0's
parse_model does, so a block name is a NameError and GE's `global` a SyntaxError unless the blocks are registered
in the namespace that parses. Checked by hand against the real v7.0 in tests/fixtures/README.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas.errors import NasError
from nas.model import load_cfg
from nas.yolov5_register import import_yolo

ROOT = Path(__file__).resolve().parents[1]

PARSER = '''import contextlib
import sys
from pathlib import Path

import torch.nn as nn
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
KNOWN = Conv = C3 = SPPF = Concat = Detect = object


def parse_model(d, ch):
    """v7.0's evaluation of names and arguments; modules it does not know are built as m(*args)."""
    built = []
    for f, n, m, args in d["backbone"] + d["head"]:
        m = eval(m) if isinstance(m, str) else m
        for j, a in enumerate(args):
            with contextlib.suppress(NameError):
                args[j] = eval(a) if isinstance(a, str) else a
        if m is not KNOWN and m is not nn.Upsample:
            block = m(*args)
            built.append(f"{type(block).__name__} {sum(p.numel() for p in block.parameters())}")
    return built


if __name__ == "__main__":
    cfg = yaml.safe_load(open(sys.argv[sys.argv.index("--cfg") + 1]))
    print("built:", ", ".join(parse_model(cfg, [3])))
'''
TRAIN = '''import sys

import yaml

from models.yolo import parse_model

print("built:", ", ".join(parse_model(yaml.safe_load(open(sys.argv[sys.argv.index("--cfg") + 1])), [3])))
'''


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    (tmp_path / "models" / "yolo.py").write_text(PARSER)
    (tmp_path / "train.py").write_text(TRAIN)
    cfg = load_cfg("yolov5n")
    cfg.pop("_source")
    cfg["head"].insert(8, [-1, 1, "SGE", [256, 8]])  # after layer 17
    cfg["head"].append([-1, 1, "GE", [1024, "global", True, True]])  # after layer 23 (now 24)
    cfg["head"][-2], cfg["head"][-1] = cfg["head"][-1], cfg["head"][-2]  # keep Detect last
    cfg["head"][-1][0] = [18, 21, 25]
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tmp_path


def run(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args, "--cfg", "best.yaml"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_stand_in_fails_as_v7_does_without_registration(checkout):
    r = run(checkout, "models/yolo.py")
    assert r.returncode == 1 and "NameError: name 'SGE' is not defined" in r.stderr


@pytest.mark.parametrize("script", ["models/yolo.py", "train.py"])
def test_every_script_builds_the_blocks_at_their_real_width(checkout, script):
    """yolov5n at width 0.25: SGE after P3 reads 64 channels, GE (extent global) after P5 256; the parameter
    count of GE depends on its width."""
    import blocks

    ge = blocks.build("GE", 256, extent="global", param_gather=True, excite_mlp=True)
    sge = blocks.build("SGE", 64, groups=8)
    r = run(checkout, "-m", "nas.yolov5_register", script)
    assert r.returncode == 0, r.stderr
    want = f"built: SGE {sum(p.numel() for p in sge.parameters())}, GE {sum(p.numel() for p in ge.parameters())}"
    assert r.stdout.strip() == want


def test_import_errors_say_what_failed(checkout, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    with pytest.raises(NasError, match="run from a YOLOv5 checkout"):
        import_yolo()
    (checkout / "models" / "yolo.py").write_text("import pkg_resources\n" + PARSER)
    monkeypatch.syspath_prepend(str(checkout))
    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # setuptools >= 81 ships none
    with pytest.raises(NasError, match=r"failed to import: ModuleNotFoundError: .*pkg_resources.*"
                                       r"setuptools<81") as e:
        import_yolo()
    assert "YOLOv5 checkout" not in str(e.value)
    for name in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        monkeypatch.delitem(sys.modules, name)
    (checkout / "models" / "yolo.py").write_text("import cv2_not_here\n")
    with pytest.raises(NasError, match="cv2_not_here is missing from YOLOv5's environment"):
        import_yolo()
