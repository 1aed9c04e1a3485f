"""The seed post's yolov5_SGE.yaml (shared/seeds, file 001) builds the network its registration code gives."""

from __future__ import annotations

import pytest
import torch
import yaml

from nas.model import build_model


def seed_yaml(shared_dir) -> dict:
    path = shared_dir / "seeds" / "001_3ac20f68650d82e2.txt"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    text = path.read_text(encoding="utf-8")
    start = text.index("# YOLOv5 🚀 by Ultralytics")
    end = text.index("温馨提示")
    return yaml.safe_load(text[start:end])


def test_seed_sge_yaml_builds_like_the_blog_registration(shared_dir):
    cfg = seed_yaml(shared_dir)
    rows = cfg["backbone"] + cfg["head"]
    assert rows[21][2] == "SpatialGroupEnhance" and rows[-1][0] == [17, 21, 25]
    m = build_model(cfg, device="meta")
    # the blog passes the channel count where SGE's `groups` goes: groups == channels (512 and 1024 in yolov5l),
    # and SGE has a weight and a bias per group
    sge = [layer for layer in m.model if layer.type == "SGE"]
    assert [s.groups for s in sge] == [512, 1024]
    assert sum(p.numel() for p in m.parameters()) == 46563709 + 2 * 512 + 2 * 1024
    assert m.save == [4, 6, 10, 14, 17, 21, 25]


def test_seed_sge_yaml_runs_and_sge_math_matches(shared_dir):
    cfg = seed_yaml(shared_dir)
    cfg["depth_multiple"], cfg["width_multiple"] = 0.33, 0.25  # the post's yolov5n setting, to keep it small
    torch.manual_seed(0)
    m = build_model(cfg).eval()
    sge = m.model[21]
    assert sge.groups == 128  # 512 x 0.25, passed as groups by the blog's registration
    with torch.no_grad():
        sge.weight.normal_()
        sge.bias.normal_()
        x = torch.randn(2, 128, 5, 7)
        # the SGE formula, group by group: similarity to the group mean, normalised over space, scaled, gated
        g = x.view(2 * 128, 1, 5, 7)
        t = (g * g.mean((2, 3), keepdim=True)).sum(1).view(2 * 128, -1)
        t = (t - t.mean(1, keepdim=True)) / (t.std(1, keepdim=True) + 1e-5)
        t = t.view(2, 128, 5, 7) * sge.weight.view(1, 128, 1, 1) + sge.bias.view(1, 128, 1, 1)
        expected = (g * torch.sigmoid(t.view(2 * 128, 1, 5, 7))).view(2, 128, 5, 7)
        assert torch.allclose(sge(x), expected, atol=1e-5)
        pred, _ = m(torch.rand(1, 3, 64, 64))
    assert torch.isfinite(pred).all()
