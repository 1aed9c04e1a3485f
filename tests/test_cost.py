"""GFLOPs and params counted on the meta device, against hand-computed networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.cost import count, module_flops, thop_gflops
from nas.errors import NasError
from nas.model import build_model, parse_imgsz

TINY = {
    "nc": 2,
    "depth_multiple": 1.0,
    "width_multiple": 1.0,
    "anchors": [[10, 13, 16, 30], [30, 61, 62, 45]],
    "backbone": [
        [-1, 1, "Conv", [8, 3, 2]],  # 0: 3 -> 8, 3x3, stride 2 (P1/2)
        [-1, 1, "Conv", [16, 3, 2]],  # 1: 8 -> 16 (P2/4)
        [-1, 1, "Conv", [16, 1, 2]],  # 2: 16 -> 16, 1x1, stride 2 (P3/8)
    ],
    "head": [
        [-1, 1, "Conv", [32, 1, 2]],  # 3: 16 -> 32 (P4/16)
        [[2, 3], 1, "Detect", ["nc", "anchors"]],  # 4
    ],
}


def conv_flops(c1, c2, k, h_out, w_out, groups=1):
    return 2 * c2 * (c1 // groups) * k * k * h_out * w_out


def test_hand_computed_small_network():
    h, w = 64, 96
    c = count(TINY, (h, w), per_layer=True)
    expected = [
        conv_flops(3, 8, 3, h // 2, w // 2),
        conv_flops(8, 16, 3, h // 4, w // 4),
        conv_flops(16, 16, 1, h // 8, w // 8),
        conv_flops(16, 32, 1, h // 16, w // 16),
        conv_flops(16, 2 * 7, 1, h // 8, w // 8) + conv_flops(32, 2 * 7, 1, h // 16, w // 16),
    ]
    assert [layer.flops for layer in c.layers] == expected
    assert c.flops == sum(expected)
    assert c.imgsz == (h, w)
    params = (3 * 8 * 9 + 16) + (8 * 16 * 9 + 32) + (16 * 16 + 32) + (16 * 32 + 64) + (17 * 14 + 33 * 14)
    assert c.params == params


def test_matmul_counted_inside_a_yaml_layer():
    # C3TR's transformer: q, k, v, in-projection, attention matmuls, out-projection, fc1, fc2 and the position
    # linear, all counted at the real size
    cfg = {**TINY, "backbone": TINY["backbone"] + [[-1, 1, "C3TR", [16, False]]],
           "head": [[-1, 1, "Conv", [32, 1, 2]], [[3, 4], 1, "Detect", ["nc", "anchors"]]]}
    c = count(cfg, (64, 64), per_layer=True)
    layer = c.layers[3]
    assert layer.module == "C3TR"
    hw, c_, heads = 8 * 8, 8, 4
    lin = 2 * hw * c_ * c_
    convs = conv_flops(16, 8, 1, 8, 8) * 2 + conv_flops(16, 16, 1, 8, 8)
    attention = 2 * 2 * heads * hw * hw * (c_ // heads)  # q @ k^T and attn @ v
    transformer = lin + (3 * lin + 3 * lin + attention + lin + 2 * lin)  # position linear; q,k,v; in-proj; out; fc
    assert layer.flops == convs + transformer


def test_module_flops_counts_functional_matmul():
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Conv2d(16, 48, 1, bias=False)

        def forward(self, x):
            b, c, h, w = x.shape
            q, k, v = self.qkv(x).flatten(2).chunk(3, dim=1)
            a = (q.transpose(1, 2) @ k).softmax(-1)  # (b, hw, hw)
            return torch.einsum("bnm,bcm->bcn", a, v).view(b, c, h, w)

    hw = 10 * 6
    expected = 2 * 48 * 16 * hw + 2 * hw * hw * 16 + 2 * hw * hw * 16
    assert module_flops(Attn(), (1, 16, 10, 6)) == expected


def test_yolov5s_reference_figures():
    c = count("yolov5s", 640)
    assert c.params == 7235389
    assert abs(c.gflops - 16.43) < 0.01
    assert round(thop_gflops("yolov5s", 640), 1) == 16.6  # what YOLOv5's model summary prints
    rect = count("yolov5s", "640x384")
    assert rect.imgsz == (640, 384) and abs(rect.flops - c.flops * 384 / 640) / c.flops < 1e-9


def test_counting_allocates_nothing():
    m = build_model("yolov5s", device="meta")
    assert all(p.device.type == "meta" for p in m.parameters())
    assert count(m, 320).gflops == pytest.approx(16.4335616 / 4, rel=1e-9)


@pytest.mark.parametrize("bad", [0, -64, "100", "640x100", "abc", "64x64x64"])
def test_bad_image_sizes(bad):
    with pytest.raises(NasError, match="image size"):
        parse_imgsz(bad)
