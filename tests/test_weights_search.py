"""`--weights` on `nas search`, `nas evaluate` and `nas audit`: every candidate fine-tunes from the checkpoint.

The checkpoints are made here with nas.weights.write_checkpoint from nas-built models (never downloaded); the
runs are tiny (64 px, one epoch, 16 synthetic images). What each candidate trains from is checked on the model
itself, right before training, tensor by tensor against the checkpoint at the layer the render moved it to.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from click.testing import CliRunner

from nas.cli import main
from nas.data import SyntheticConfig, synthetic_dataset
from nas.model import build_model, load_cfg
from nas.record import read, read_study
from nas.weights import read_checkpoint, write_checkpoint

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "base": "yolov5n",
    "imgsz": 640,
    "width_multiple": [0.25, 0.5],
    "insert": [{"after": 17, "name": "P3", "blocks": ["none", "SGE"]},
               {"after": 23, "name": "P5", "blocks": ["none", "SGE"]}],
}
TINY = ["--epochs", "1", "--imgsz", "64", "--batch", "8", "--seed", "0", "--sampler", "random"]
STORAGE = "sqlite:///studies/nas.db"


def _checkpoint(path: Path, cfg: str | dict = "yolov5n", nc: int = 2, seed: int = 123) -> Path:
    """A nas-built model with weights unlike a seed-0 init (BatchNorm statistics too), as a YOLOv5 checkpoint."""
    torch.manual_seed(seed)
    model = build_model(cfg, nc=nc)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.1)
    write_checkpoint(model, path, names=[f"c{i}" for i in range(nc)])
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    data = synthetic_dataset(SyntheticConfig(n_train=16, n_val=8, size=64, nc=2), cache_dir=root / "data")
    other_arch = load_cfg("yolov5n")
    other_arch["backbone"][9][3] = [1024, 3]  # SPPF with kernel 3 instead of 5
    other_arch.pop("_source")
    out = {"data": Path(data), "base": _checkpoint(root / "base.pt"), "other": _checkpoint(root / "other.pt", seed=7),
           "nc3": _checkpoint(root / "nc3.pt", nc=3), "arch": _checkpoint(root / "arch.pt", other_arch)}
    evil = root / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > pwned.txt",))

    evil.write_bytes(pickle.dumps({"model": Evil()}))
    out["evil"] = evil
    raw = out["base"].read_bytes()
    (root / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    out["truncated"] = root / "truncated.pt"
    (root / "notes.pt").write_text("these are not weights\n")
    out["text"] = root / "notes.pt"
    torch.save(build_model("yolov5n", nc=2).state_dict(), root / "plain.pt")
    out["plain"] = root / "plain.pt"
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tmp_path


def search(assets, *extra: str, space: str = "space.yaml"):
    return CliRunner().invoke(main, ["search", "--space", space, "--budget", "100gflops", "--data",
                                     str(assets["data"]), *TINY, *extra])


def one_error(r, *words: str) -> str:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def dump(path: Path = Path("studies/nas.db")) -> list[str]:
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


@pytest.fixture
def spy(monkeypatch):
    """The state dict and YAML of every model the proxy trainer is about to train."""
    import nas.train.trainer as trainer

    seen: list[tuple[dict, dict]] = []
    real = trainer._run

    def run(model, *args, **kwargs):
        seen.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, dict(model.yaml)))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "_run", run)
    return seen


def _expected_map(arch: dict) -> dict[int, int]:
    """Old -> new layer index of SPACE's inserts, worked out by hand: each inserted block shifts what follows."""
    after = sorted({"P3": 17, "P5": 23}[p] for p, c in arch["choices"].items() if c["block"] != "none")
    return {i: i + sum(1 for a in after if a < i) for i in range(25)}


def _assert_started_from(state: dict, base_state: dict, index_map: dict[int, int]) -> int:
    """Every checkpoint tensor is in the trained model at its mapped layer; returns how many were compared."""
    n = 0
    for key, value in base_state.items():
        _, i, rest = key.split(".", 2)
        to = f"model.{index_map[int(i)]}.{rest}"
        assert torch.equal(state[to].float(), value.float()), (key, to)
        n += 1
    return n


def test_every_candidate_trains_from_its_transferred_weights(workdir, assets, spy):
    r = search(assets, "--trials", "3", "--weights", str(assets["base"]))
    assert r.exit_code == 0, r.output
    ckpt = read_checkpoint(assets["base"])
    assert f"weights: base.pt (sha256 {ckpt.sha256[:8]}…), fine-tuning; width 0.25 depth 0.33 from the checkpoint" \
        in " ".join(r.output.split())
    study = optuna.load_study(study_name="space", storage=STORAGE)
    weights = read_study(study).weights
    assert weights["sha256"] == ckpt.sha256 and weights["name"] == "base.pt"
    assert Path(weights["path"]) == assets["base"].resolve()
    trained = [t for t in study.get_trials() if read(t).scored]
    assert len(trained) == 3 and len(spy) == 3
    for t, (state, _cfg) in zip(trained, spy, strict=True):
        rec = read(t)
        assert rec.arch["width_multiple"] == 0.25 and "width_multiple" not in t.params  # narrowed: never sampled
        assert _assert_started_from(state, ckpt.state_dict, _expected_map(rec.arch)) == len(ckpt.state_dict)
        n_blocks = sum(c["block"] != "none" for c in rec.arch["choices"].values())
        assert rec.transfer["share"] == 1.0 and rec.transfer["tensors"] == len(ckpt.state_dict)
        assert len(rec.transfer["new"]) == n_blocks
        assert f"trial {t.number}: {rec.candidate} -> trained" in r.output
        assert "from weights 100.0%" in r.output
    # the check has teeth: a from-scratch build (seed 0) differs from the checkpoint
    torch.manual_seed(0)
    scratch = build_model("yolov5n", nc=2).state_dict()
    assert not torch.equal(scratch["model.0.conv.weight"], ckpt.state_dict["model.0.conv.weight"])


def test_nc_other_than_the_checkpoints_keeps_detects_class_rows_at_init(workdir, assets, spy):
    r = search(assets, "--trials", "1", "--weights", str(assets["nc3"]))
    assert r.exit_code == 0, r.output
    assert "nc 2 (the checkpoint has 3): Detect's class rows start at init" in " ".join(r.output.split())
    (state, _), = spy
    base = read_checkpoint(assets["nc3"]).state_dict
    for k in ("model.24.m.0.weight", "model.24.m.0.bias"):  # 3 anchors x (5 + nc) rows
        src, dst = base[k].view(3, 8, -1), state[k].view(3, 7, -1)
        assert torch.equal(dst[:, :5], src[:, :5])  # box and objectness rows from the checkpoint
        assert not torch.equal(dst[:, 5:], src[:, 5:7])  # class rows at init
    t, = [t for t in optuna.load_study(study_name="space", storage=STORAGE).get_trials() if read(t).scored]
    assert 0.99 < read(t).transfer["share"] < 1.0 and read(t).transfer["skipped_params"] > 0


def test_resume_with_other_weights_or_without_is_refused_and_changes_nothing(workdir, assets):
    assert search(assets, "--trials", "1", "--weights", str(assets["base"])).exit_code == 0
    before = dump()
    one_error(search(assets, "--trials", "2", "--weights", str(assets["other"])), "space", "base.pt", "other.pt",
              "--weights")
    one_error(search(assets, "--trials", "2"), "fine-tuning from base.pt", "--weights")
    assert dump() == before
    r = search(assets, "--trials", "2", "--weights", str(assets["base"]))  # the same file resumes
    assert r.exit_code == 0, r.output
    assert len([t for t in optuna.load_study(study_name="space", storage=STORAGE).get_trials()
                if read(t).scored]) == 2


def test_weights_on_a_study_searched_from_scratch_is_refused(workdir, assets):
    assert search(assets, "--trials", "1").exit_code == 0
    before = dump()
    one_error(search(assets, "--trials", "2", "--weights", str(assets["base"])), "from scratch", "--weights")
    assert dump() == before


@pytest.mark.parametrize("which, words", [
    ("text", ["notes.pt", "not a torch checkpoint"]),
    ("truncated", ["truncated.pt", "truncated"]),
    ("evil", ["evil.pt", "refused to load", "system"]),
    ("plain", ["plain.pt", "plain state dict", "model YAML"]),
    ("arch", ["arch.pt", "layer 9", "SPPF"]),
    ("missing", ["missing.pt", "not found"]),
])
def test_bad_weights_are_one_error_line_and_touch_no_study(workdir, assets, which, words):
    path = workdir / "missing.pt" if which == "missing" else assets[which]
    one_error(search(assets, "--trials", "1", "--weights", str(path)), *words)
    assert not (workdir / "studies").exists()
    assert not (workdir / "pwned.txt").exists()


def test_a_width_the_space_cannot_take_is_refused(workdir, assets):
    (workdir / "wide.yaml").write_text(yaml.safe_dump({**SPACE, "width_multiple": [0.375, 0.5]}))
    one_error(search(assets, "--trials", "1", "--weights", str(assets["base"]), space="wide.yaml"),
              "width_multiple is 0.25", "0.375, 0.5")
    assert not (workdir / "studies").exists()


# ------------------------------------------------------------------------------------------- evaluate


def _edited_yaml(path: Path) -> Path:
    """A hand-edited yolov5n: SGE inserted after layer 17, every later index moved by hand."""
    cfg = load_cfg("yolov5n")
    cfg.pop("_source")
    head = cfg["head"]  # rows 10..24; layer 17 is head[7]
    head.insert(8, [-1, 1, "SGE", [256, 8]])
    shift = {i: (i + 1 if i > 17 else i) for i in range(25)}
    for row in head:
        f = row[0]
        row[0] = [shift[j] if j >= 0 else j for j in f] if isinstance(f, list) else f
    head[-1][0] = [18, 21, 24]  # Detect reads the block's output, P4, P5
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_evaluate_with_weights_aligns_then_fine_tunes(workdir, assets, spy):
    model = _edited_yaml(workdir / "edited.yaml")
    r = CliRunner().invoke(main, ["evaluate", str(model), "--weights", str(assets["base"]), "--data",
                                  str(assets["data"]), "--epochs", "1", "--imgsz", "64"])
    assert r.exit_code == 0, r.output
    first = r.stderr.strip().splitlines()[0]
    assert first.startswith("transferred 100.0% of base.pt's parameters") and "new: SGE at 18" in first, r.stderr
    (state, _), = spy
    ckpt = read_checkpoint(assets["base"])
    assert _assert_started_from(state, ckpt.state_dict, {i: i + (i > 17) for i in range(25)}) == len(ckpt.state_dict)


@pytest.mark.parametrize("which, words", [("evil", ["refused to load"]), ("truncated", ["truncated"]),
                                          ("text", ["not a torch checkpoint"])])
def test_evaluate_refuses_bad_weights_before_training(workdir, assets, spy, which, words):
    r = CliRunner().invoke(main, ["evaluate", "yolov5n", "--weights", str(assets[which]), "--data",
                                  str(assets["data"]), "--epochs", "1", "--imgsz", "64"])
    one_error(r, *words)
    assert spy == []


# ------------------------------------------------------------------------------------------- audit


@pytest.fixture(scope="module")
def searched(tmp_path_factory, assets) -> Path:
    """A study of 3 trained candidates fine-tuned from base.pt (kept where the study recorded it)."""
    root = tmp_path_factory.mktemp("audit")
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    base = root / "base.pt"
    base.write_bytes(assets["base"].read_bytes())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        r = search(assets, "--trials", "3", "--no-early-stop", "--weights", str(base))
    assert r.exit_code == 0, r.output
    return root


@pytest.fixture
def audit_dir(searched, tmp_path, monkeypatch) -> Path:
    import shutil

    shutil.copytree(searched / "studies", tmp_path / "studies")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def audit(*args: str):
    return CliRunner().invoke(main, ["audit", "--study", "space", "--candidates", "3", "--seeds", "0",
                                     "--reference-epochs", "2", *args])


def test_audit_reruns_candidates_from_the_studys_weights(audit_dir, searched, assets, spy):
    r = audit("--max-jobs", "1")  # the recorded path exists and hashes the same: taken without --weights
    assert r.exit_code == 0, r.output
    assert "weights: base.pt" in r.stderr and "fine-tuning" in r.stderr
    (state, cfg), = spy
    ckpt = read_checkpoint(assets["base"])
    kept = [j for j, row in enumerate(cfg["backbone"] + cfg["head"]) if row[2] != "SGE"]  # the base's rows, in order
    index_map = dict(enumerate(kept))
    assert _assert_started_from(state, ckpt.state_dict, index_map) == len(ckpt.state_dict)


def test_audit_refuses_other_or_missing_weights_and_changes_nothing(audit_dir, searched, assets):
    before = dump()
    one_error(audit("--weights", str(assets["other"])), "other.pt", "not the checkpoint", "base.pt")
    moved = searched / "moved.pt"
    (searched / "base.pt").rename(moved)
    try:
        one_error(audit(), "base.pt", "not here", "--weights")
        assert dump() == before and optuna.study.get_all_study_names(STORAGE) == ["space"]
        r = audit("--weights", str(moved), "--max-jobs", "0")  # the same bytes under another name
        assert r.exit_code == 0, r.output
    finally:
        moved.rename(searched / "base.pt")


def test_audit_refuses_weights_on_a_study_searched_from_scratch(tmp_path, monkeypatch, assets):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    study = optuna.create_study(storage=STORAGE.replace("studies/", ""), study_name="s",
                                directions=["maximize", "minimize"])
    study.set_user_attr("proxy", {"data": "synthetic", "epochs": 1, "imgsz": 64, "batch": 8, "seed": 0,
                                  "synthetic": [8, 4]})
    study.set_user_attr("space_hash", "0123456789abcdef")
    r = CliRunner().invoke(main, ["audit", "--storage", "sqlite:///nas.db", "--models", "yolov5n", "yolov5s",
                                  "yolov5m", "--weights", str(assets["base"])])
    one_error(r, "from scratch", "--weights")
    assert optuna.study.get_all_study_names("sqlite:///nas.db") == ["s"]


def test_extra_workers_get_the_same_weights():
    from nas.budget import parse_budget
    from nas.search.options import SearchOptions
    from nas.search.workers import worker_command

    cmd = worker_command(SearchOptions(space="neck", budget=parse_budget(["10gflops"]), weights="base.pt"))
    assert SearchOptions.from_json(cmd[-1]).weights == "base.pt"
    plain = worker_command(SearchOptions(space="neck", budget=parse_budget(["10gflops"])))
    assert SearchOptions.from_json(plain[-1]).weights is None


# ------------------------------------------------------------------------ the fine-tuning proxy's defaults


def test_proxy_settings_fill_only_what_was_not_given():
    from nas.weights.base import FINETUNE_PROXY, proxy_settings

    assert proxy_settings("b.pt", None, None, 4, 128) == (FINETUNE_PROXY.epochs, FINETUNE_PROXY.imgsz)
    assert proxy_settings("b.pt", 7, None, 4, 128) == (7, FINETUNE_PROXY.imgsz)
    assert proxy_settings("b.pt", None, 96, 4, 128) == (FINETUNE_PROXY.epochs, 96)
    assert proxy_settings(None, None, None, 4, 128) == (4, 128)
    assert proxy_settings(None, 3, 64, 4, 128) == (3, 64)


@pytest.fixture
def tiny_finetune_proxy(monkeypatch):
    """FINETUNE_PROXY made tiny (and unlike the from-scratch 4 epochs at 128 px) so a default run is quick."""
    import nas.weights.base as wb

    proxy = wb.FinetuneProxy(epochs=1, imgsz=96, hyp=(("lr0", 0.02), ("warmup_epochs", 0.0)), chosen_on="a test")
    monkeypatch.setattr(wb, "FINETUNE_PROXY", proxy)
    return proxy


@pytest.fixture
def lr0s(monkeypatch) -> list[float]:
    """The lr0 every training run builds its optimiser with."""
    import nas.train.trainer as trainer

    seen: list[float] = []
    real = trainer.build_optimizer

    def build(model, hyp, batch):
        seen.append(hyp.lr0)
        return real(model, hyp, batch)

    monkeypatch.setattr(trainer, "build_optimizer", build)
    return seen


def _search_plain(assets, *extra: str):
    return CliRunner().invoke(main, ["search", "--space", "space.yaml", "--budget", "100gflops", "--data",
                                     str(assets["data"]), "--batch", "8", "--seed", "0", "--sampler", "random",
                                     "--trials", "1", "--weights", str(assets["base"]), *extra])


def test_search_with_weights_runs_the_fine_tuning_proxy_by_default(workdir, assets, spy, tiny_finetune_proxy,
                                                                    lr0s):
    r = _search_plain(assets)
    assert r.exit_code == 0, r.output
    proxy = read_study(optuna.load_study(study_name="space", storage=STORAGE)).proxy
    assert (proxy["epochs"], proxy["imgsz"], proxy["hyp"]) == (1, 96, {"lr0": 0.02, "warmup_epochs": 0.0})
    text = " ".join(r.output.split())
    assert "fine-tuning proxy: 1 epoch at 96 px (lr0 0.02, warmup_epochs 0), the defaults chosen on a test" in text
    assert len(spy) == 1 and lr0s == [0.02]


def test_a_search_from_scratch_keeps_the_trainers_hyperparameters(workdir, assets, tiny_finetune_proxy, lr0s):
    from nas.train.trainer import Hyp

    r = search(assets, "--trials", "1")
    assert r.exit_code == 0, r.output
    assert "hyp" not in read_study(optuna.load_study(study_name="space", storage=STORAGE)).proxy
    assert lr0s == [Hyp().lr0]


def test_explicit_epochs_and_imgsz_win_over_the_fine_tuning_proxy(workdir, assets, spy, tiny_finetune_proxy):
    r = _search_plain(assets, "--epochs", "2", "--imgsz", "64")
    assert r.exit_code == 0, r.output
    proxy = read_study(optuna.load_study(study_name="space", storage=STORAGE)).proxy
    assert (proxy["epochs"], proxy["imgsz"]) == (2, 64)
    assert "fine-tuning proxy: 2 epochs at 64 px (lr0 0.02, warmup_epochs 0) (as given)" in " ".join(r.output.split())


@pytest.mark.parametrize("extra, expected", [([], (1, 96)), (["--epochs", "2", "--imgsz", "64"], (2, 64))])
def test_evaluate_with_weights_takes_the_fine_tuning_proxy_unless_told(workdir, assets, spy, tiny_finetune_proxy,
                                                                       lr0s, extra, expected):
    r = CliRunner().invoke(main, ["evaluate", "yolov5n", "--weights", str(assets["base"]), "--data",
                                  str(assets["data"]), "--json", *extra])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["epochs"], doc["imgsz"]) == expected and len(doc["history"]) == expected[0] and lr0s == [0.02]


def test_proxy_text_says_the_default_imgsz_was_chosen_on_synthetic_objects_only_for_real_data():
    from nas.front.report import proxy_text

    real = {"data": "/data/coco8.yaml", "epochs": 2, "imgsz": 128, "batch": 8, "seed": 0}
    assert "imgsz 128 (the default, chosen on synthetic objects, not real images), batch 8" in proxy_text(real)
    assert "chosen on" not in proxy_text({**real, "imgsz": 320})
    assert "chosen on" not in proxy_text({**real, "data": "synthetic", "synthetic": [512, 64]})
