"""`nas export-best --weights`: best.pt beside best.yaml from a study fine-tuned from a checkpoint (made here with
write_checkpoint, never downloaded), holding the checkpoint's tensors at their new indices; the header's train
line names it; another file than the study's, a bad file or an unwritable place is one error, nothing written."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from nas.cli import main
from nas.data import SyntheticConfig, synthetic_dataset
from nas.model import build_model
from nas.weights import read_checkpoint, write_checkpoint

SPACE = {"base": "yolov5n", "imgsz": 640, "width_multiple": [0.25],
         "insert": [{"after": 17, "name": "P3", "blocks": ["none", "SGE"]},
                    {"after": 23, "name": "P5", "blocks": ["none", "GE"]}]}


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build_model("yolov5n", nc=2)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.01)  # unlike any fresh init
    write_checkpoint(model, path, names=["a", "b"])
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """A study fine-tuned from base.pt whose trials include the base and SGE after P3 with GE after P5."""
    root = tmp_path_factory.mktemp("export")
    data = synthetic_dataset(SyntheticConfig(n_train=8, n_val=4, size=64, nc=2), cache_dir=root / "data")
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    _checkpoint(root / "base.pt", 1)
    _checkpoint(root / "other.pt", 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        r = CliRunner().invoke(main, ["search", "--space", "space.yaml", "--budget", "100gflops", "--data", str(data),
                                      "--epochs", "1", "--imgsz", "64", "--batch", "4", "--trials", "3",
                                      "--sampler", "random", "--weights", "base.pt"])
    assert r.exit_code == 0, r.output
    return root


def both_blocks() -> str:
    """The trial with SGE after P3 and GE after P5 (the search samples it; the test fails if it did not)."""
    import optuna

    study = optuna.load_study(study_name="space", storage="sqlite:///studies/nas.db")
    return str(next(t.number for t in study.get_trials()
                   if t.params == {"P3.block": "SGE", "P5.block": "GE"}))


@pytest.fixture
def workdir(searched, tmp_path, monkeypatch) -> Path:
    for name in ("studies", "base.pt", "other.pt"):
        (shutil.copytree if name == "studies" else shutil.copy)(searched / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def export(*args: str):
    return CliRunner().invoke(main, ["export-best", "--out", "out/best.yaml", "--trial", both_blocks(), *args])


def dump() -> list[str]:
    with sqlite3.connect("studies/nas.db") as db:
        return list(db.iterdump())


def one_error(r, *words: str) -> None:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_best_pt_holds_the_checkpoint_at_its_new_indices(workdir):
    r = export("--weights", "base.pt")
    assert r.exit_code == 0, r.output
    text = Path("out/best.yaml").read_text()
    train = next(line for line in text.splitlines() if line.startswith("# train: "))
    assert "nas evaluate best.yaml --weights best.pt" in train
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 python -m nas.yolov5_register train.py --cfg best.yaml" in train
    assert "--weights best.pt --img 640" in train and "--weights ''" not in train
    assert re.search(r"^transferred 100\.0% of base\.pt's parameters \(349 tensors\) · new: SGE at 18 \([\d,]+ "
                     r"params\), GE at 25 \([\d,]+ params\) · skipped: none$", r.stderr, re.M), r.stderr
    assert "YOLOv5's rule on the same pair" in r.stderr and "wrote out/best.pt" in r.stderr
    best = read_checkpoint("out/best.pt")
    cfg = yaml.safe_load(text)
    assert best.yaml["backbone"] + best.yaml["head"] == cfg["backbone"] + cfg["head"]
    assert best.nc == 2 and best.names == ["a", "b"]
    base = read_checkpoint("base.pt").state_dict
    for k, v in base.items():
        _, i, rest = k.split(".", 2)
        j = int(i) + (int(i) > 17) + (int(i) > 23)
        assert torch.equal(best.state_dict[f"model.{j}.{rest}"], v), k
    assert len(best.state_dict) == len(base) + sum(1 for k in best.state_dict if k.split(".")[1] in ("18", "25"))


def test_json_adds_the_checkpoint(workdir):
    r = export("--weights", "base.pt", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["checkpoint"]["path"] == "out/best.pt" and doc["checkpoint"]["transfer"]["share"] == 1.0
    assert doc["checkpoint"]["yolov5_rule"]["kept"] < doc["checkpoint"]["yolov5_rule"]["total"]


def test_without_weights_the_train_line_is_from_scratch(workdir):
    assert export().exit_code == 0
    assert "--weights '' --img 640" in Path("out/best.yaml").read_text()
    assert not Path("out/best.pt").exists()


def test_another_checkpoint_a_bad_file_or_an_unwritable_place_writes_nothing(workdir):
    before = dump()
    one_error(export("--weights", "other.pt"), "other.pt", "not the checkpoint study", "base.pt")
    raw = Path("base.pt").read_bytes()
    Path("cut.pt").write_bytes(raw[: len(raw) // 3])
    one_error(export("--weights", "cut.pt"), "cut.pt", "truncated")
    one_error(export("--weights", "missing.pt"), "missing.pt", "not found")
    Path("evil.pt").write_bytes(pickle.dumps({"model": Evil()}))
    one_error(export("--weights", "evil.pt"), "evil.pt", "refused to load", "system")
    assert not Path("pwned.txt").exists()
    assert not Path("out").exists()  # neither best.yaml nor best.pt, nor their folder
    Path("out").write_text("a file where the folder should be")
    one_error(export("--weights", "base.pt"), "--out", "is not a folder")
    assert Path("out").read_text() == "a file where the folder should be"
    assert dump() == before


def _tiny_trial(gflops_offset: float):
    """An in-memory study whose one trial records the tiny fixture model's params and its GFLOPs as nas search
    stores them (rounded to 6 decimals), plus `gflops_offset`."""
    import optuna

    from nas.cost import count
    from nas.record import write

    tiny = Path(__file__).parent / "fixtures" / "yolov5_tiny.yaml"
    cost = count(build_model(str(tiny), device="meta"), imgsz=(64, 64))
    study = optuna.create_study()
    study.set_user_attr("imgsz", [64, 64])
    trial = study.ask()
    write(trial, gflops=round(float(cost.gflops), 6) + gflops_offset, params=int(cost.params))
    study.tell(trial, 0.0)
    return study, study.trials[0], tiny.read_text(), float(cost.gflops)


def test_round_trip_takes_a_tiny_model_whose_gflops_were_stored_rounded():
    from nas.errors import NasError
    from nas.export import round_trip

    study, t, text, gflops = _tiny_trial(0.0)
    assert gflops < 0.01 and round(gflops, 6) != gflops  # small enough that 1e-6 relative is below the rounding
    _, params, again = round_trip(study, t, text)
    assert again == gflops and params > 0
    study, t, text, _ = _tiny_trial(2e-6)  # a real difference beyond the stored rounding is still refused
    with pytest.raises(NasError, match="rebuilds to"):
        round_trip(study, t, text)
