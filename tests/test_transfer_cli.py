"""`nas transfer`: YOLOv5 v7.0's own tiny checkpoint (tests/fixtures) moved into hand-edited YAMLs (the seed
post's SGE YAML, FocalModulation for SPPF, several edits), the written checkpoint read back tensor by tensor,
YOLOv5's name-and-shape rule printed beside it, and every bad input one error line with nothing written."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from nas.cli import main
from nas.model import load_cfg
from nas.weights import read_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
BASE = FIXTURES / "yolov5_tiny_v7.pt"  # written by YOLOv5 v7.0's train.py code: nc 3, width 0.03125
TINY = load_cfg(FIXTURES / "yolov5_tiny.yaml")
TINY.pop("_source")


def edited(tmp_path: Path, name: str, backbone: list, head: list, **over) -> Path:
    cfg = {**TINY, "backbone": backbone, "head": head, **over}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def shift(rows: list, after: int, by: int = 1) -> list:
    """Rows whose absolute sources past `after` move by `by` (what a user does by hand after inserting)."""
    out = []
    for f, n, m, args in rows:
        fs = [j + by if j > after else j for j in (f if isinstance(f, list) else [f])]
        out.append([fs if isinstance(f, list) else fs[0], n, m, args])
    return out


def run(*args: str):
    return CliRunner().invoke(main, ["transfer", *args])


def one_error(r, *words: str) -> str:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def assert_written(out: Path, layer_map: dict[int, int]) -> int:
    """The written checkpoint holds every base tensor at the layer the map gives it; returns how many."""
    base = read_checkpoint(BASE).state_dict
    got = read_checkpoint(out)
    assert got.format == "nas" and got.nc == 3
    n = 0
    for k, v in base.items():
        _, i, rest = k.split(".", 2)
        assert torch.equal(got.state_dict[f"model.{layer_map[int(i)]}.{rest}"], v), k
        n += 1
    return n


def test_seed_sge_yaml(tmp_path, shared_dir):
    post = (shared_dir / "seeds" / "001_3ac20f68650d82e2.txt").read_text(encoding="utf-8")
    seed = yaml.safe_load(post[post.index("# YOLOv5 🚀 by Ultralytics"):post.index("温馨提示")])
    seed.update(nc=3, depth_multiple=TINY["depth_multiple"], width_multiple=TINY["width_multiple"])
    cfg = tmp_path / "yolov5_SGE.yaml"
    cfg.write_text(yaml.safe_dump(seed, sort_keys=False))
    out = tmp_path / "sge.pt"
    r = run("--weights", str(BASE), "--cfg", str(cfg), "--out", str(out))
    assert r.exit_code == 0, r.output
    line, rule, wrote = r.stdout.strip().splitlines()
    assert line == ("transferred 100.0% of yolov5_tiny_v7.pt's parameters (349 tensors) · new: SGE at 21 (32 "
                    "params), SGE at 25 (64 params) · skipped: none")
    # by name and shape YOLOv5 keeps layers 0-20 and, by chance, a few tensors of others: far from all
    assert rule.startswith("YOLOv5's rule on the same pair (train.py --cfg yolov5_SGE.yaml --weights "
                           "yolov5_tiny_v7.pt): Transferred ") and "/353 items" in rule
    kept = int(rule.split("Transferred ")[1].split("/")[0])
    assert kept < 348
    assert wrote.startswith(f"wrote {out} (")
    assert assert_written(out, {i: i + (i > 20) + (i > 23) for i in range(25)}) == 349


def test_focal_modulation_for_sppf_is_replaced(tmp_path):
    backbone = [*TINY["backbone"][:9], [-1, 1, "FocalModulation", [1024]]]
    cfg = edited(tmp_path, "focal.yaml", backbone, TINY["head"])
    out = tmp_path / "focal.pt"
    r = run("--weights", str(BASE), "--cfg", str(cfg), "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    t = doc["transfer"]
    assert [(d["base_module"], d["base_index"], d["module"], d["index"]) for d in t["replaced"]] == \
        [("SPPF", 9, "FocalModulation", 9)]
    assert t["new"] == [] and t["skipped"] == []
    sppf = sum(v.numel() for k, v in read_checkpoint(BASE).state_dict.items()
               if k.startswith("model.9.") and "running" not in k and "num_batches" not in k)
    assert t["transferred_params"] == t["base_params"] - sppf and t["share"] < 1
    assert doc["yolov5_rule"]["kept"] < doc["yolov5_rule"]["total"] and doc["path"] == str(out)
    base = read_checkpoint(BASE).state_dict
    got = read_checkpoint(out).state_dict
    assert all(torch.equal(got[k], v) for k, v in base.items() if not k.startswith("model.9."))


def test_several_edits_and_another_nc(tmp_path):
    """SGE after layer 4 (read by the P3 Concat), GE after the P3 output, FLA after P5; --nc 5."""
    b = TINY["backbone"]
    backbone = [*b[:5], [-1, 1, "SGE", [256]], *shift(b[5:], 4)]
    head = shift(TINY["head"], 4)  # indices from 5 on move by one
    head[6][0] = [-1, 5]  # the P3 Concat reads the SGE's output, not layer 4's
    head = [*head[:8], [-1, 1, "GE", [256]], *shift(head[8:], 18)]
    head = [*head[:-1], [-1, 1, "FLA", [1024]], [[19, 22, 26], 1, "Detect", ["nc", "anchors"]]]
    cfg = edited(tmp_path, "several.yaml", backbone, head)
    out = tmp_path / "several.pt"
    r = run("--weights", str(BASE), "--cfg", str(cfg), "--out", str(out), "--nc", "5", "--json")
    assert r.exit_code == 0, r.output
    t = json.loads(r.stdout)["transfer"]
    assert [(d["module"], d["index"]) for d in t["new"]] == [("SGE", 5), ("GE", 19), ("FLA", 26)]
    assert t["replaced"] == [] and t["nc"] == 5 and t["base_nc"] == 3
    assert {d["reason"] for d in t["skipped"]} == {"nc differs (3 -> 5)"}
    layer_map = {i: i + (i > 4) + (i > 17) + (i > 23) for i in range(25)}
    assert {int(k): v for k, v in t["layer_map"].items()} == layer_map
    got = read_checkpoint(out)
    assert got.nc == 5 and got.names == [f"class{i}" for i in range(5)]
    base = read_checkpoint(BASE).state_dict
    for k, v in base.items():
        _, i, rest = k.split(".", 2)
        w = got.state_dict[f"model.{layer_map[int(i)]}.{rest}"]
        if k.startswith("model.24.m."):  # Detect's box and objectness rows come from the base, class rows not
            assert torch.equal(w.view(3, 10, -1)[:, :5], v.view(3, 8, -1)[:, :5]), k
        else:
            assert torch.equal(w, v), k


# ------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def bad(tmp_path) -> dict[str, Path]:
    raw = BASE.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "notes.pt").write_text("these are not weights\n")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"echo pwned > {tmp_path / 'pwned.txt'}",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"model": Evil()}))
    torch.save(read_checkpoint(BASE).state_dict, tmp_path / "plain.pt")
    return {p.stem: p for p in tmp_path.glob("*.pt")}


@pytest.mark.parametrize("which, words", [
    ("notes", ["notes.pt", "not a torch checkpoint"]),
    ("truncated", ["truncated.pt", "truncated"]),
    ("evil", ["evil.pt", "refused to load", "system"]),
    ("plain", ["plain.pt", "plain state dict", "model YAML"]),
])
def test_bad_checkpoints_are_one_error_and_write_nothing(tmp_path, bad, which, words):
    out = tmp_path / "out.pt"
    one_error(run("--weights", str(bad[which]), "--cfg", str(FIXTURES / "yolov5_tiny.yaml"), "--out", str(out)),
              *words)
    assert not out.exists() and not (tmp_path / "pwned.txt").exists()


def test_a_yaml_of_another_architecture_is_refused(tmp_path):
    other = edited(tmp_path, "other.yaml", [[-1, 1, "Conv", [64, 3, 2]], [-1, 1, "Conv", [128, 3, 2]]],
                   [[-1, 1, "Conv", [256, 3, 2]], [[0, 1, 2], 1, "Detect", ["nc", "anchors"]]])
    out = tmp_path / "out.pt"
    one_error(run("--weights", str(BASE), "--cfg", str(other), "--out", str(out)), "other.yaml", "align",
              "cannot be transferred")
    assert not out.exists()


def test_unwritable_out_and_the_base_itself_are_refused(tmp_path):
    cfg = str(FIXTURES / "yolov5_tiny.yaml")
    (tmp_path / "file").write_text("x")
    one_error(run("--weights", str(BASE), "--cfg", cfg, "--out", str(tmp_path / "file" / "out.pt")), "--out",
              "is not a folder")
    one_error(run("--weights", str(BASE), "--cfg", cfg, "--out", str(tmp_path)), "--out", "is a folder")
    copy = tmp_path / "base.pt"
    copy.write_bytes(BASE.read_bytes())
    one_error(run("--weights", str(copy), "--cfg", cfg, "--out", str(copy)), "the --weights file itself")
    assert copy.read_bytes() == BASE.read_bytes()
    one_error(run("--weights", str(BASE), "--cfg", cfg, "--out", str(tmp_path / "o.pt"), "--nc", "0"), "--nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.pt", "file"]


def test_another_width_is_refused_not_written_as_an_empty_transfer(tmp_path):
    """The seed post's YAML as posted (yolov5l's multiples, 1.0) against a 0.03125 checkpoint: no weight keeps
    its shape, so nas refuses instead of writing a checkpoint that holds only BatchNorm step counters."""
    cfg = edited(tmp_path, "wide.yaml", TINY["backbone"], TINY["head"], width_multiple=0.0625)
    out = tmp_path / "wide.pt"
    line = one_error(run("--weights", str(BASE), "--cfg", str(cfg), "--out", str(out)),
                     "wide.yaml", "width_multiple 0.0625", "yolov5_tiny_v7.pt", "0.03125")
    assert "set width_multiple: 0.03125" in line and not out.exists()
