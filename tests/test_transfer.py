"""Weight transfer by role (nas.weights): the render's map, aligned hand-edited YAMLs, Detect rows when nc
differs, width/depth skips, and YOLOv5's name-and-shape rule on the same pairs for comparison."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
import yaml

from nas.errors import NasError
from nas.model import build_model, load_cfg
from nas.space import Architecture, load_space, render, render_with_map, sample
from nas.weights import TransferReport, align_layers, alignment, transfer, yolov5_rule

optuna.logging.set_verbosity(optuna.logging.WARNING)
W = 0.125  # every model here is yolov5n-shaped at a tiny width: fast to build and run

HEADER = f"""
nc: 80
depth_multiple: 0.33
width_multiple: {W}
anchors:
  - [10,13, 16,30, 33,23]
  - [30,61, 62,45, 59,119]
  - [116,90, 156,198, 373,326]
"""
BACKBONE = """
backbone:
  [[-1, 1, Conv, [64, 6, 2, 2]],  # 0
   [-1, 1, Conv, [128, 3, 2]],  # 1
   [-1, 3, C3, [128]],  # 2
   [-1, 1, Conv, [256, 3, 2]],  # 3
   [-1, 6, C3, [256]],  # 4
   [-1, 1, Conv, [512, 3, 2]],  # 5
   [-1, 9, C3, [512]],  # 6
   [-1, 1, Conv, [1024, 3, 2]],  # 7
   [-1, 3, C3, [1024]],  # 8
   [-1, 1, SPPF, [1024, 5]],  # 9
  ]
"""

# SGE after layer 13, as a user edits yolov5n.yaml: every later index and Detect's sources move by one
SGE_AFTER_13 = HEADER + BACKBONE + """
head:
  [[-1, 1, Conv, [512, 1, 1]],  # 10
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],  # 11
   [[-1, 6], 1, Concat, [1]],  # 12
   [-1, 3, C3, [512, False]],  # 13
   [-1, 1, SGE, [512, 8]],  # 14 new
   [-1, 1, Conv, [256, 1, 1]],  # 15
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],  # 16
   [[-1, 4], 1, Concat, [1]],  # 17
   [-1, 3, C3, [256, False]],  # 18
   [-1, 1, Conv, [256, 3, 2]],  # 19
   [[-1, 15], 1, Concat, [1]],  # 20
   [-1, 3, C3, [512, False]],  # 21
   [-1, 1, Conv, [512, 3, 2]],  # 22
   [[-1, 10], 1, Concat, [1]],  # 23
   [-1, 3, C3, [1024, False]],  # 24
   [[18, 21, 24], 1, Detect, [nc, anchors]],  # 25
  ]
"""

# FocalModulation in place of SPPF (the seed post 000)
FOCAL_FOR_SPPF = HEADER + BACKBONE.replace("[-1, 1, SPPF, [1024, 5]]", "[-1, 1, FocalModulation, [1024]]") + """
head:
  [[-1, 1, Conv, [512, 1, 1]],
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 6], 1, Concat, [1]],
   [-1, 3, C3, [512, False]],
   [-1, 1, Conv, [256, 1, 1]],
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 4], 1, Concat, [1]],
   [-1, 3, C3, [256, False]],
   [-1, 1, Conv, [256, 3, 2]],
   [[-1, 14], 1, Concat, [1]],
   [-1, 3, C3, [512, False]],
   [-1, 1, Conv, [512, 3, 2]],
   [[-1, 10], 1, Concat, [1]],
   [-1, 3, C3, [1024, False]],
   [[17, 20, 23], 1, Detect, [nc, anchors]],
  ]
"""

# several edits at once: SGE after 4, FocalModulation for SPPF, GE after the P3 output, FLA after P5
SEVERAL = HEADER + """
backbone:
  [[-1, 1, Conv, [64, 6, 2, 2]],  # 0
   [-1, 1, Conv, [128, 3, 2]],  # 1
   [-1, 3, C3, [128]],  # 2
   [-1, 1, Conv, [256, 3, 2]],  # 3
   [-1, 6, C3, [256]],  # 4
   [-1, 1, SpatialGroupEnhance, [256]],  # 5 new
   [-1, 1, Conv, [512, 3, 2]],  # 6
   [-1, 9, C3, [512]],  # 7
   [-1, 1, Conv, [1024, 3, 2]],  # 8
   [-1, 3, C3, [1024]],  # 9
   [-1, 1, FocalModulation, [1024, 2, 3]],  # 10 replaces SPPF
  ]
head:
  [[-1, 1, Conv, [512, 1, 1]],  # 11
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],  # 12
   [[-1, 7], 1, Concat, [1]],  # 13
   [-1, 3, C3, [512, False]],  # 14
   [-1, 1, Conv, [256, 1, 1]],  # 15
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],  # 16
   [[-1, 5], 1, Concat, [1]],  # 17 reads the SGE after layer 4
   [-1, 3, C3, [256, False]],  # 18
   [-1, 1, GE, [256]],  # 19 new
   [-1, 1, Conv, [256, 3, 2]],  # 20
   [[-1, 15], 1, Concat, [1]],  # 21
   [-1, 3, C3, [512, False]],  # 22
   [-1, 1, Conv, [512, 3, 2]],  # 23
   [[-1, 11], 1, Concat, [1]],  # 24
   [-1, 3, C3, [1024, False]],  # 25
   [-1, 1, FLA, [1024, 2]],  # 26 new
   [[19, 22, 26], 1, Detect, [nc, anchors]],  # 27
  ]
"""


def tiny(name: str = "yolov5n", **over) -> dict:
    cfg = load_cfg(name)
    cfg.update({"width_multiple": W, "depth_multiple": 0.33, **over})
    return cfg


def base_pair(cfg: dict | None = None, seed: int = 0):
    cfg = cfg or tiny()
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():  # a "trained" base: no tensor equals a fresh init by chance
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.01)
    return cfg, {k: v.clone() for k, v in model.state_dict().items()}


def assert_copied(base_state: dict, model: torch.nn.Module, layer_map: dict[int, int]) -> int:
    """Every base tensor of a mapped layer equals the model's tensor at the new index; returns how many."""
    sd = model.state_dict()
    n = 0
    for k, v in base_state.items():
        _, i, rest = k.split(".", 2)
        if int(i) in layer_map:
            assert torch.equal(sd[f"model.{layer_map[int(i)]}.{rest}"], v), k
            n += 1
    return n


def test_base_into_itself_is_everything():
    cfg, state = base_pair()
    model = build_model(cfg)
    report = transfer(state, cfg, model)
    assert report.layer_map == {i: i for i in range(25)}
    assert report.share == 1.0 and report.transferred_tensors == len(state) == 349
    assert assert_copied(state, model, report.layer_map) == 349
    assert report.line("yolov5n.pt") == "transferred 100.0% of yolov5n.pt's parameters (349 tensors) · new: none · " \
                                        "skipped: none"
    # train.py prints "Transferred 348/349 items" for yolov5n into itself (anchors excluded)
    assert tuple(yolov5_rule(state, model.state_dict(), report.layer_map)) == (348, 349, 1.0, 0)


def neck_candidate():
    space = load_space("neck")
    ge = {"block": "GE", "extent": "global", "param_gather": False, "excite_mlp": True}
    arch = Architecture(0.33, W, {"P3": ge, "P4": {"block": "none"}, "P5": ge})
    return space, arch


def test_neck_candidate_by_render_map_keeps_every_base_layer_and_early_outputs():
    space, arch = neck_candidate()
    cfg, index_map = render_with_map(space, arch)
    assert cfg == render(space, arch)
    base_cfg, state = base_pair(dict(space.base_cfg, width_multiple=W, depth_multiple=0.33))
    assert index_map == {**{i: i for i in range(18)}, 18: 19, 19: 20, 20: 21, 21: 22, 22: 23, 23: 24, 24: 26}
    assert align_layers(base_cfg, cfg) == index_map  # the alignment finds the render's own map
    model = build_model(cfg)
    report = transfer(state, base_cfg, model, index_map)
    assert report.how == "render map" and report.share == 1.0 and not report.skipped
    assert [(d["index"], d["module"]) for d in report.new] == [(18, "GE"), (25, "GE")]
    assert [d["params"] for d in report.new] == [int(model.model[18].np), int(model.model[25].np)] and \
        all(d["params"] > 0 for d in report.new)
    assert assert_copied(state, model, index_map) == len(state)
    assert report.line("yolov5n.pt") == (
        f"transferred 100.0% of yolov5n.pt's parameters (349 tensors) · new: GE at 18 "
        f"({report.new[0]['params']:,} params), GE at 25 ({report.new[1]['params']:,} params) · skipped: none")

    # the layers before the first block compute exactly what the base computes
    base = build_model(base_cfg)
    base.load_state_dict(state)
    outs: dict[str, dict[int, torch.Tensor]] = {"base": {}, "edited": {}}
    for tag, m in (("base", base), ("edited", model)):
        for i in range(18):
            m.model[i].register_forward_hook(lambda mod, inp, out, i=i, tag=tag: outs[tag].__setitem__(i, out))
        m.eval()
        with torch.no_grad():
            m(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    for i in range(18):
        assert torch.equal(outs["base"][i], outs["edited"][i]), i

    # YOLOv5's rule on the same pair: the layers after the first block lose their weights
    rule = yolov5_rule(state, model.state_dict(), index_map)
    assert rule.kept == 270 and rule.total == len(model.state_dict()) and rule.share < 0.7


@pytest.mark.parametrize("name", ["neck", "backbone", "sppf", "full"])
def test_alignment_recovers_the_render_map_of_shipped_spaces(name):
    space = load_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(8):
        arch = sample(space, study.ask())
        cfg, index_map = render_with_map(space, arch)
        base_cfg = dict(space.base_cfg, width_multiple=arch.width_multiple, depth_multiple=arch.depth_multiple)
        al = alignment(base_cfg, cfg)
        assert al.matched == index_map, arch
        n_inserted = sum(arch.choices[p.name]["block"] != "none" for p in space.points if p.kind == "insert")
        assert len(al.new) == n_inserted and not al.removed


def test_hand_edited_sge_after_13_shifts_everything_after_it():
    base_cfg, state = base_pair()
    cfg = yaml.safe_load(SGE_AFTER_13)
    index_map = align_layers(base_cfg, cfg)
    assert index_map == {**{i: i for i in range(14)}, **{i: i + 1 for i in range(14, 25)}}
    model = build_model(cfg)
    report = transfer(state, base_cfg, model)
    assert report.share == 1.0 and [(d["index"], d["module"]) for d in report.new] == [(14, "SGE")]
    assert report.new[0]["params"] == 2 * 8  # a weight and a bias per group
    assert assert_copied(state, model, report.layer_map) == len(state)
    assert report.line("yolov5n.pt").endswith("· new: SGE at 14 (16 params) · skipped: none")
    # train.py printed "Transferred 234/351 items" for this YAML and a real yolov5n.pt (issue 20); same rule here
    rule = yolov5_rule(state, model.state_dict(), report.layer_map)
    assert (rule.kept, rule.total) == (234, 351)
    assert rule.share < 0.7


def test_hand_edited_focal_modulation_replaces_sppf():
    base_cfg, state = base_pair()
    cfg = yaml.safe_load(FOCAL_FOR_SPPF)
    al = alignment(base_cfg, cfg)
    assert al.matched == {i: i for i in range(25) if i != 9} and al.replaced == {9: 9} and not al.new
    model = build_model(cfg)
    report = transfer(state, base_cfg, model)
    sppf = sum(v.numel() for k, v in state.items() if k.startswith("model.9.") and "running" not in k
               and "num_batches" not in k)
    assert report.replaced == [{"base_index": 9, "base_module": "SPPF", "base_params": sppf, "index": 9,
                                "module": "FocalModulation", "params": int(model.model[9].np)}]
    assert report.transferred_params == report.base_params - sppf and not report.skipped
    assert assert_copied(state, model, report.layer_map) == len(state) - 12  # SPPF: 2 Convs of 6 tensors
    assert "· replaced: SPPF at 9 by FocalModulation at 9 (" in report.line("yolov5n.pt")


def test_several_hand_edits():
    base_cfg, state = base_pair()
    cfg = yaml.safe_load(SEVERAL)
    al = alignment(base_cfg, cfg)
    expected = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 7, 7: 8, 8: 9, 10: 11, 11: 12, 12: 13, 13: 14, 14: 15,
                15: 16, 16: 17, 17: 18, 18: 20, 19: 21, 20: 22, 21: 23, 22: 24, 23: 25, 24: 27}
    assert al.matched == expected and al.replaced == {9: 10} and al.new == [5, 19, 26]
    model = build_model(cfg)
    report = transfer(state, base_cfg, model)
    assert [(d["index"], d["module"]) for d in report.new] == [(5, "SGE"), (19, "GE"), (26, "FLA")]
    assert assert_copied(state, model, expected) == len(state) - 12
    accounted = report.transferred_params + sum(d["base_params"] for d in report.replaced)
    assert accounted == report.base_params
    # by name and shape, only layers 0-4 keep their own weights: every later index has moved
    rule = yolov5_rule(state, model.state_dict(), expected)
    assert rule.share < 0.1


def test_seed_sge_yaml_into_yolov5s(shared_dir):
    path = shared_dir / "seeds" / "001_3ac20f68650d82e2.txt"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    text = path.read_text(encoding="utf-8")
    seed = yaml.safe_load(text[text.index("# YOLOv5 🚀 by Ultralytics"):text.index("温馨提示")])
    base_cfg, state = base_pair(tiny("yolov5s"))
    # the post's own advice: set the multiples to the base's (yolov5s; here both at the tiny test width)
    seed["depth_multiple"], seed["width_multiple"] = base_cfg["depth_multiple"], base_cfg["width_multiple"]
    model = build_model(seed)
    report = transfer(state, base_cfg, model)
    assert report.share == 1.0 and not report.skipped and not report.replaced
    assert [(d["index"], d["module"]) for d in report.new] == [(21, "SGE"), (25, "SGE")]
    assert report.layer_map[20] == 20 and report.layer_map[21] == 22 and report.layer_map[24] == 26
    assert assert_copied(state, model, report.layer_map) == len(state)
    rule = yolov5_rule(state, model.state_dict(), report.layer_map)
    assert rule.kept < 0.9 * len(state) and rule.share < 0.75

    # left at the post's 1.0 multiples, the layers align but no tensor fits: every one is skipped, and why
    seed["depth_multiple"], seed["width_multiple"] = 1.0, 0.25
    wide = transfer(state, base_cfg, build_model(seed))
    detect_biases = 3 * 255  # the only tensors whose shape does not depend on the width
    assert wide.layer_map == report.layer_map and wide.transferred_params == detect_biases
    assert {d["reason"] for d in wide.skipped if d["params"]} == {"width differs"}
    assert wide.unfilled  # the deeper C3s' extra bottlenecks have no base tensor: they keep their init


def test_misplaced_by_yolov5s_rule_for_backbone_blocks():
    space = load_space("backbone")
    arch = Architecture(0.33, W, {p.name: {"block": "SGE", "groups": 4} for p in space.points})
    cfg, index_map = render_with_map(space, arch)
    base_cfg, state = base_pair(dict(space.base_cfg, width_multiple=W, depth_multiple=0.33))
    model = build_model(cfg)
    rule = yolov5_rule(state, model.state_dict(), index_map)
    # train.py: 62/357, 0.6%, and 4 BatchNorm tensors loaded into a layer of another role (issue 20)
    assert (rule.kept, rule.total, rule.misplaced) == (62, 357, 4) and rule.share < 0.01
    assert transfer(state, base_cfg, model, index_map).share == 1.0


def test_nc_differs_copies_box_and_objectness_rows_only():
    base_cfg, state = base_pair()
    torch.manual_seed(5)
    model = build_model(base_cfg, nc=3)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    report = transfer(state, base_cfg, model)
    sd = model.state_dict()
    na = model.model[-1].na
    for lvl in range(3):
        for name in ("weight", "bias"):
            key = f"model.24.m.{lvl}.{name}"
            got, src, ini = sd[key].reshape(na, 8, -1), state[key].reshape(na, 85, -1), init[key].reshape(na, 8, -1)
            assert torch.equal(got[:, :5], src[:, :5])  # xywh + objectness of every anchor
            assert torch.equal(got[:, 5:], ini[:, 5:])  # class rows keep their init
    skipped = [d for d in report.skipped]
    assert {d["reason"] for d in skipped} == {"nc differs (80 -> 3)"} and len(skipped) == 6
    class_params = sum(state[f"model.24.m.{lvl}.{n}"][0].numel() * 80 * na for lvl in range(3)
                       for n in ("weight", "bias"))
    assert sum(d["params"] for d in skipped) == class_params
    assert report.transferred_params == report.base_params - class_params
    assert report.transferred_tensors == len(state) and report.base_nc == 80 and report.nc == 3
    assert "· skipped: nc differs (80 -> 3) (6 tensors, " in report.line("yolov5n.pt")
    # YOLOv5 drops the whole Detect conv instead
    assert yolov5_rule(state, sd, report.layer_map).kept == 348 - 6


def test_width_and_depth_differ_are_skipped_with_reasons():
    base_cfg, state = base_pair()
    wide = transfer(state, base_cfg, build_model(tiny(width_multiple=0.25)))
    assert wide.transferred_params == 3 * 255 and wide.share < 0.002  # Detect's biases fit at any width
    assert all(d["reason"] == "width differs" for d in wide.skipped)
    assert any(d["detail"] == "base (8, 3, 6, 6) vs edited (16, 3, 6, 6)" for d in wide.skipped)

    deep_cfg, deep_state = base_pair(tiny(depth_multiple=0.67))
    shallow = build_model(tiny())
    report = transfer(deep_state, deep_cfg, shallow)
    assert report.skipped and {d["reason"] for d in report.skipped} == {"depth differs"}
    assert all(".m.1." in d["key"] or ".m.2." in d["key"] or ".m.3." in d["key"] or ".m.4." in d["key"]
               or ".m.5." in d["key"] for d in report.skipped)
    assert 0.5 < report.share < 1.0
    deeper = transfer(state, base_cfg, build_model(tiny(depth_multiple=0.67)))
    assert deeper.share == 1.0 and deeper.unfilled and all(".m." in k for k in deeper.unfilled)


def test_rewired_concat_is_replaced_not_matched():
    base_cfg, state = base_pair()
    cfg = tiny()
    cfg["head"][9] = [[-1, 13], 1, "Concat", [1]]  # layer 19 now reads C3 13 instead of Conv 14
    al = alignment(base_cfg, cfg)
    assert 19 not in al.matched and al.replaced == {19: 19} and al.matched[20] == 20
    report = transfer(state, base_cfg, build_model(cfg))
    assert {d["reason"] for d in report.skipped} == {"shape differs"}  # C3 20 reads more channels now
    assert {d["key"] for d in report.skipped} == {"model.20.cv1.conv.weight", "model.20.cv2.conv.weight"}
    assert "replaced: Concat at 19 by Concat at 19 (0 params)" in report.line("yolov5n.pt")


def test_unalignable_yaml_and_bad_map_are_errors():
    base_cfg, state = base_pair()
    other = tiny()
    other["backbone"] = [[-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [48, 3, 2]], [-1, 1, "Conv", [96, 3, 2]],
                         [-1, 1, "Conv", [192, 3, 2]], [-1, 1, "Conv", [384, 3, 2]]]
    other["head"] = [[-1, 1, "Conv", [200, 1, 1]], [[2, 3, 5], 1, "Detect", ["nc", "anchors"]]]
    with pytest.raises(NasError, match=r"only 0 of the base's 25 layers align .*first unmatched base layer: 0 Conv"):
        transfer(state, base_cfg, build_model(other))
    space, arch = neck_candidate()
    cfg, index_map = render_with_map(space, arch)
    wrong = {i: j for i, j in index_map.items() if i < 23} | {23: 25}
    with pytest.raises(NasError, match="base layer 23 is C3 but edited layer 25 is GE"):
        transfer(state, base_cfg, build_model(cfg), wrong)
    with pytest.raises(NasError, match="index map 24 -> 24 is out of range or out of order"):
        transfer(state, base_cfg, build_model(cfg), {**index_map, 24: 24})


def test_report_json_and_rounding():
    cfg, state = base_pair()
    report = transfer(state, cfg, build_model(cfg))
    doc = json.loads(report.to_json())
    assert doc["share"] == 1.0 and doc["layer_map"]["24"] == 24 and doc["skipped"] == []
    assert doc["transferred_tensors"] == 349 and doc["base_params"] == report.base_params
    almost = TransferReport(base_params=10_000, base_tensors=3, transferred_params=9_996, transferred_tensors=2,
                            layer_map={}, how="alignment")
    assert almost.line("x.pt").startswith("transferred 99.9% of x.pt's parameters (2 tensors)")
