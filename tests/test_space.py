"""Search spaces: validation, sampling, rendering with remapped indices, hashes and cost prediction."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import yaml

from nas.cost import count, predict_cost
from nas.errors import NasError
from nas.model import build_model
from nas.space import (
    Architecture,
    baseline,
    has_baseline,
    load_space,
    model_hash,
    n_architectures,
    render,
    sample,
    to_yaml,
    trial_params,
)

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def write_space(tmp_path, doc, name="space.yaml") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return p


def random_archs(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((trial, sample(space, trial)))
    return out


@pytest.mark.parametrize("name", ["neck", "backbone", "sppf", "full"])
def test_shipped_spaces_sample_build_run_and_predict_cost(name):
    space = load_space(SPACES / f"{name}.yaml")
    for k, (_trial, arch) in enumerate(random_archs(space, 20, seed=1)):
        cfg = render(space, arch)
        params, flops = predict_cost(space, arch)
        real = count(cfg, space.imgsz)  # a full forward pass on the meta device
        assert real.params == params
        assert real.flops == pytest.approx(flops, rel=1e-9)
        if k % 5:
            continue
        model = build_model(cfg).eval()  # every fifth one also runs on real numbers
        with torch.no_grad():
            pred, _ = model(torch.rand(1, 3, 64, 96))
        assert pred.shape[-1] == 85 and torch.isfinite(pred).all()


def test_neck_budget_is_a_real_tradeoff():
    space = load_space(SPACES / "neck.yaml")
    flops = [predict_cost(space, arch)[1] / 1e9 for _trial, arch in random_archs(space, 60, seed=3)]
    assert min(flops) < 10 < max(flops)


def test_seed_post_insertion_remaps_detect():
    doc = {"base": "yolov5l", "insert": [{"after": 20, "name": "P4", "blocks": ["none", "SpatialGroupEnhance"]},
                                         {"after": 23, "name": "P5", "blocks": ["none", "SGE"]}]}
    here = Path(__file__).parent
    space_path = here / "_seed_space.yaml"
    space_path.write_text(yaml.safe_dump(doc))
    try:
        space = load_space(space_path)
    finally:
        space_path.unlink()
    arch = Architecture(1.0, 1.0, {"P4": {"block": "SGE", "groups": 8}, "P5": {"block": "SGE", "groups": 8}})
    cfg = render(space, arch)
    rows = cfg["backbone"] + cfg["head"]
    assert rows[21] == [-1, 1, "SGE", [512, 8]]
    assert rows[25] == [-1, 1, "SGE", [1024, 8]]
    assert rows[-1][0] == [17, 21, 25]
    assert rows[22][0] == -1 and rows[23][0] == [-1, 10] and rows[24][0] == -1  # Conv, Concat (head P5), C3


def _stock_rows(name="yolov5n"):
    from nas.model import load_cfg

    cfg = load_cfg(name)
    return cfg["backbone"] + cfg["head"]


def test_single_insert_expected_yaml(tmp_path):
    space = load_space(write_space(tmp_path, {"base": "yolov5n", "insert": [{"after": 6, "name": "B",
                                                                               "blocks": ["none", "SGE"]}]}))
    cfg = render(space, Architecture(0.33, 0.25, {"B": {"block": "SGE", "groups": 8}}))
    assert cfg["backbone"][:7] == _stock_rows()[:7]
    # SGE's channel arg is pre-scaling: 512 * 0.25 = 128 channels, the output of layer 6
    assert cfg["backbone"][7] == [-1, 1, "SGE", [512, 8]]
    assert len(cfg["backbone"]) == 11
    head = cfg["head"]
    assert head[2] == [[-1, 7], 1, "Concat", [1]]  # was [-1, 6]: the head now reads SGE
    assert head[6] == [[-1, 4], 1, "Concat", [1]]  # before the insertion: unchanged
    assert head[9] == [[-1, 15], 1, "Concat", [1]]  # was [-1, 14]
    assert head[12] == [[-1, 11], 1, "Concat", [1]]  # was [-1, 10]
    assert head[14] == [[18, 21, 24], 1, "Detect", ["nc", "anchors"]]


def test_several_inserts_and_replace_expected_yaml(tmp_path):
    doc = {"base": "yolov5n",
           "insert": [{"after": 4, "name": "A", "blocks": ["none", "GE"]},
                      {"after": 17, "name": "P3", "blocks": ["none", "FLA"]}],
           "replace": [{"layer": 9, "name": "SPPF", "blocks": ["keep", "FocalModulation"]}]}
    space = load_space(write_space(tmp_path, doc))
    arch = Architecture(0.33, 0.25, {
        "A": {"block": "GE", "extent": "global", "param_gather": True, "excite_mlp": True},
        "P3": {"block": "FLA", "num_heads": 8, "focusing_factor": 3, "kernel_size": 5},
        "SPPF": {"block": "FocalModulation", "focal_level": 2, "focal_window": 3, "focal_factor": 2}})
    cfg = render(space, arch)
    expected_rows = [
        [-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
        [-1, 1, "Conv", [256, 3, 2]], [-1, 6, "C3", [256]],
        [-1, 1, "GE", [256, "global", True, True]],  # 5
        [-1, 1, "Conv", [512, 3, 2]], [-1, 9, "C3", [512]], [-1, 1, "Conv", [1024, 3, 2]],
        [-1, 3, "C3", [1024]],
        [-1, 1, "FocalModulation", [1024, 2, 3, 2]],  # 10, replaced SPPF
        [-1, 1, "Conv", [512, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 7], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],
        [-1, 1, "Conv", [256, 1, 1]], [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
        [[-1, 5], 1, "Concat", [1]],  # P3 of the backbone now comes from GE
        [-1, 3, "C3", [256, False]],  # 18
        [-1, 1, "FLA", [256, 8, 3, 5]],  # 19
        [-1, 1, "Conv", [256, 3, 2]], [[-1, 15], 1, "Concat", [1]], [-1, 3, "C3", [512, False]],  # 22
        [-1, 1, "Conv", [512, 3, 2]], [[-1, 11], 1, "Concat", [1]], [-1, 3, "C3", [1024, False]],  # 25
        [[19, 22, 25], 1, "Detect", ["nc", "anchors"]],
    ]
    assert cfg["backbone"] + cfg["head"] == expected_rows
    assert len(cfg["backbone"]) == 11
    build_model(cfg, device="meta")


def test_width_change_rescales_block_channels(tmp_path):
    doc = {"base": "yolov5n", "width_multiple": [0.25, 0.375],
           "insert": [{"after": 23, "name": "P5", "blocks": ["none", "SGE"]}]}
    space = load_space(write_space(tmp_path, doc))
    narrow = render(space, Architecture(0.33, 0.25, {"P5": {"block": "SGE", "groups": 8}}))
    wide = render(space, Architecture(0.33, 0.375, {"P5": {"block": "SGE", "groups": 8}}))
    assert narrow["width_multiple"] == 0.25 and wide["width_multiple"] == 0.375
    assert narrow["head"][-2] == wide["head"][-2] == [-1, 1, "SGE", [1024, 8]]
    m = build_model(wide, device="meta")
    assert m.layers_info[24].args[0] == 384  # 1024 * 0.375


def test_hash_stability_and_params_roundtrip(tmp_path):
    a = load_space(SPACES / "neck.yaml")
    b = load_space(SPACES / "neck.yaml")
    assert a.hash == b.hash
    moved = write_space(tmp_path, (SPACES / "neck.yaml").read_text(), "elsewhere.yaml")
    assert load_space(moved).hash == a.hash  # the content decides, not the file name
    changed = write_space(tmp_path, (SPACES / "neck.yaml").read_text().replace("[4, 8, 16]", "[4, 8]"), "c.yaml")
    assert load_space(changed).hash != a.hash
    for trial, arch in random_archs(a, 10, seed=5):
        cfg1, cfg2 = render(a, arch), render(b, Architecture.from_dict(arch.to_dict()))
        assert model_hash(cfg1) == model_hash(cfg2)
        assert trial_params(a, arch) == trial.params
        assert yaml.safe_load(to_yaml(cfg1)) == cfg1
    base = baseline(a)
    assert all(c == {"block": "none"} for c in base.choices.values())
    assert model_hash(render(a, base)) != model_hash(render(a, Architecture(0.33, 0.375, base.choices)))


def test_conditional_parameter_names():
    space = load_space(SPACES / "neck.yaml")
    for trial, arch in random_archs(space, 15, seed=7):
        for name in trial.params:
            if name.count(".") == 2:
                point, block, _ = name.split(".")
                assert arch.choices[point]["block"] == block
    assert n_architectures(space) == 2 * (1 + 3 + 4 + 2 + 4) ** 3


BASE = {"base": "yolov5n", "insert": [{"after": 17, "name": "P3", "blocks": ["none", "SGE"]}]}


@pytest.mark.parametrize(
    "doc, words",
    [
        ({**BASE, "insert": [{"after": 17, "blocks": ["none", "SGX"]}]}, ["unknown block 'SGX'"]),
        ({**BASE, "hyperparameters": {"SGE": {"groupz": [4]}}}, ["no hyperparameter 'groupz'"]),
        ({**BASE, "hyperparameters": {"SGE": {"groups": [3]}}}, ["point 'P3'", "groups=3", "divide"]),
        ({**BASE, "insert": [{"after": 40, "blocks": ["none", "SGE"]}]}, ["out of range"]),
        ({**BASE, "insert": [{"after": 24, "blocks": ["none", "SGE"]}]}, ["Detect"]),
        ({**BASE, "insert": [{"after": 17, "name": "a", "blocks": ["none", "SGE"]},
                             {"after": 17, "name": "b", "blocks": ["none", "GE"]}]}, ["duplicate", "17"]),
        ({**BASE, "insert": [{"after": 17, "name": "a", "blocks": ["none", "SGE"]},
                             {"after": 20, "name": "a", "blocks": ["none", "GE"]}]}, ["duplicate point name"]),
        ({**BASE, "insert": [{"after": 17, "blocks": []}]}, ["non-empty list"]),
        ({**BASE, "insert": [{"after": 17, "blocks": ["none"]}]}, ["only choice"]),
        ({**BASE, "replace": [{"layer": 7, "blocks": ["keep", "SGE"]}]},
         ["layer 7", "Conv", "keeps the channel count"]),
        ({**BASE, "replace": [{"layer": 12, "blocks": ["keep", "SGE"]}]}, ["several layers"]),
        ({**BASE, "base": "yolov9"}, ["base 'yolov9' does not load"]),
        ({**BASE, "imgsz": 650}, ["imgsz", "multiple of"]),
        ({**BASE, "frobnicate": 1}, ["unknown key(s) frobnicate"]),
        ({**BASE, "hyperparameters": {"BiFormer": {"topk": [99]}}}, []),  # unused block: fine
    ],
)
def test_validation_errors(tmp_path, doc, words):
    path = write_space(tmp_path, doc)
    if not words:
        load_space(path)
        return
    with pytest.raises(NasError) as e:
        load_space(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    for w in words:
        assert w in msg, msg


def test_topk_beyond_regions_and_syntax_error(tmp_path):
    doc = {**BASE, "insert": [{"after": 17, "name": "P3", "blocks": ["none", "BiFormer"],
                               "hyperparameters": {"BiFormer": {"n_win": [2], "topk": [8]}}}]}
    with pytest.raises(NasError, match="topk=8"):
        load_space(write_space(tmp_path, doc))
    bad = write_space(tmp_path, "base: yolov5n\ninsert:\n  - {after: 17, blocks: [none, SGE]\n", "broken.yaml")
    with pytest.raises(NasError, match=r"broken.yaml:\d+:\d+: YAML syntax error"):
        load_space(bad)


def test_replacement_with_a_base_yaml_path(tmp_path):
    from nas.model import load_cfg

    cfg = load_cfg("yolov5n")
    cfg.pop("_source")
    (tmp_path / "mybase.yaml").write_text(yaml.safe_dump(cfg))
    space = load_space(write_space(tmp_path, {"base": "mybase.yaml", "replace": [
        {"layer": 9, "name": "SPPF", "blocks": ["keep", "FocalModulation"]}]}))
    arch = Architecture(0.33, 0.25, {"SPPF": {"block": "FocalModulation", "focal_level": 2, "focal_window": 3,
                                              "focal_factor": 2}})
    m = build_model(render(space, arch), device="meta")
    assert m.model[9].type == "FocalModulation"


def test_a_space_where_every_point_must_hold_a_block_starts_without_a_baseline(tmp_path):
    """No `none` at a point: the base model is not in the space, so the search enqueues no baseline (it crashed
    with Optuna's "'none' not in (...)" ValueError) and samples only the space's own architectures."""
    from nas.search.run import enqueue_start

    doc = (SPACES / "neck.yaml").read_text().replace("blocks: [none, ", "blocks: [")
    space = load_space(write_space(tmp_path, doc))
    assert not has_baseline(space) and has_baseline(load_space(SPACES / "neck.yaml"))
    study = optuna.create_study(directions=["maximize", "minimize"])
    enqueue_start(study, space)
    assert study.get_trials() == []
    trial = study.ask()
    arch = sample(space, trial)
    assert all(c["block"] != "none" for c in arch.choices.values())
