"""Transfer share: nas.weights.transfer (layers by role) against YOLOv5 train.py's name-and-shape rule, for
candidates of the shipped spaces and for hand-edited YAMLs, on yolov5n at its own multiples (a fresh model
stands in for yolov5n.pt: the counts depend on names and shapes only). Prints a markdown table.

    PYTHONPATH=. python bench/bench_transfer.py > bench/results/transfer.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from nas.model import build_model, load_cfg
from nas.space import Architecture, load_space, render_with_map
from nas.weights import transfer, yolov5_rule

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_transfer import FOCAL_FOR_SPPF, SEVERAL, SGE_AFTER_13  # noqa: E402  (the tests' hand-edited YAMLs)

GE = {"block": "GE", "extent": "global", "param_gather": False, "excite_mlp": True}
SGE = {"block": "SGE", "groups": 8}
FOCAL = {"block": "FocalModulation", "focal_level": 2, "focal_window": 3, "focal_factor": 2}


def space_cases():
    neck = load_space("neck")
    yield "neck: GE after P3 and P5", neck, {"P3": GE, "P4": {"block": "none"}, "P5": GE}
    yield "neck: GE, FLA, GE after P3, P4, P5", neck, {
        "P3": GE, "P4": {"block": "FLA", "num_heads": 2, "focusing_factor": 3, "kernel_size": 5}, "P5": GE}
    backbone = load_space("backbone")
    yield "backbone: SGE at the four points", backbone, {p.name: SGE for p in backbone.points}
    yield "sppf: FocalModulation for SPPF", load_space("sppf"), {"SPPF": FOCAL}
    full = load_space("full")
    six = {p.name: (SGE if p.kind == "insert" else {"block": "keep"}) for p in full.points}
    yield "full: SGE at the six insert points", full, six


def row(name: str, base_cfg: dict, cfg: dict, index_map: dict | None) -> str:
    base_state = build_model(base_cfg).state_dict()
    model = build_model(cfg)
    report = transfer(base_state, base_cfg, model, index_map)
    rule = yolov5_rule(base_state, model.state_dict(), report.layer_map)
    return (f"| {name} | {rule.kept}/{rule.total} | {100 * rule.share:.1f}% | {rule.misplaced} | "
            f"{100 * report.share:.1f}% | {report.transferred_tensors} |")


def main() -> None:
    print("| edited model (yolov5n base) | train.py's rule keeps | in their own role | misplaced tensors "
          "| nas transfer | tensors |")
    print("|---|---|---|---|---|---|")
    for name, space, choices in space_cases():
        full = {p.name: {"block": p.empty} for p in space.points} | choices
        arch = Architecture(0.33, 0.25, full)
        cfg, index_map = render_with_map(space, arch)
        base_cfg = dict(space.base_cfg, depth_multiple=0.33, width_multiple=0.25)
        print(row(name, base_cfg, cfg, index_map))
    base_cfg = load_cfg("yolov5n")
    for name, text in (("hand-edited: SGE after layer 13", SGE_AFTER_13),
                       ("hand-edited: FocalModulation for SPPF", FOCAL_FOR_SPPF),
                       ("hand-edited: SGE, FocalModulation, GE, FLA", SEVERAL)):
        cfg = yaml.safe_load(text) | {"width_multiple": 0.25}
        print(row(name, base_cfg, cfg, None))
    seed = seed_sge()
    if seed is not None:  # the seed post's yolov5_SGE.yaml (yolov5l's multiples) at yolov5n's, as it advises
        print(row("seed post: yolov5_SGE.yaml (SGE after P4 and P5 outputs)", base_cfg,
                  seed | {"depth_multiple": 0.33, "width_multiple": 0.25}, None))


def seed_sge() -> dict | None:
    path = ROOT.parent / "shared" / "seeds" / "001_3ac20f68650d82e2.txt"
    if not path.is_file():
        return None
    post = path.read_text(encoding="utf-8")
    return yaml.safe_load(post[post.index("# YOLOv5 🚀 by Ultralytics"):post.index("温馨提示")])


if __name__ == "__main__":
    main()
