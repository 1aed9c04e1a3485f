"""Model builder parity with ultralytics/yolov5 v7.0, and its bad-input errors."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from nas.errors import NasError
from nas.model import build_model, load_cfg, make_divisible
from nas.model.yolo import Detect

# `python models/yolo.py --cfg yolov5s.yaml` in ultralytics/yolov5 v7.0: per-layer params, from, n, args.
YOLOV5S_LAYERS = [
    (-1, 1, 3520, "Conv", [3, 32, 6, 2, 2]),
    (-1, 1, 18560, "Conv", [32, 64, 3, 2]),
    (-1, 1, 18816, "C3", [64, 64, 1]),
    (-1, 1, 73984, "Conv", [64, 128, 3, 2]),
    (-1, 2, 115712, "C3", [128, 128, 2]),
    (-1, 1, 295424, "Conv", [128, 256, 3, 2]),
    (-1, 3, 625152, "C3", [256, 256, 3]),
    (-1, 1, 1180672, "Conv", [256, 512, 3, 2]),
    (-1, 1, 1182720, "C3", [512, 512, 1]),
    (-1, 1, 656896, "SPPF", [512, 512, 5]),
    (-1, 1, 131584, "Conv", [512, 256, 1, 1]),
    (-1, 1, 0, "nn.Upsample", [None, 2, "nearest"]),
    ([-1, 6], 1, 0, "Concat", [1]),
    (-1, 1, 361984, "C3", [512, 256, 1, False]),
    (-1, 1, 33024, "Conv", [256, 128, 1, 1]),
    (-1, 1, 0, "nn.Upsample", [None, 2, "nearest"]),
    ([-1, 4], 1, 0, "Concat", [1]),
    (-1, 1, 90880, "C3", [256, 128, 1, False]),
    (-1, 1, 147712, "Conv", [128, 128, 3, 2]),
    ([-1, 14], 1, 0, "Concat", [1]),
    (-1, 1, 296448, "C3", [256, 256, 1, False]),
    (-1, 1, 590336, "Conv", [256, 256, 3, 2]),
    ([-1, 10], 1, 0, "Concat", [1]),
    (-1, 1, 1182720, "C3", [512, 512, 1, False]),
    ([17, 20, 23], 1, 229245, "Detect", None),
]

# YOLOv5 v7.0 build summaries ("YOLOv5s summary: 214 layers, 7235389 parameters") and, after fuse(), the
# published table (n 1.9M, s 7.2M, m 21.2M, l 46.5M, x 86.7M): 1867405, 7225885, 21172173, 46533693, 86705005.
UNFUSED = {"yolov5n": 1872157, "yolov5s": 7235389, "yolov5m": 21190557, "yolov5l": 46563709, "yolov5x": 86749405}
FUSED = {"yolov5n": 1867405, "yolov5s": 7225885, "yolov5m": 21172173, "yolov5l": 46533693, "yolov5x": 86705005}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def bn_params(m: torch.nn.Module) -> int:
    """What fuse() removes: the BatchNorm weight and bias folded into the preceding conv's new bias."""
    from nas.model.common import Conv

    return sum(mod.bn.weight.numel() for mod in m.modules() if isinstance(mod, Conv))


def test_yolov5s_layer_by_layer():
    m = build_model("yolov5s", device="meta")
    assert len(m.model) == len(YOLOV5S_LAYERS)
    for layer, info, (f, n, params, module, args) in zip(m.model, m.layers_info, YOLOV5S_LAYERS):
        assert layer.f == f, info
        assert info.n == n, info
        assert layer.np == params, info
        assert info.module == module, info
        if args is not None:
            assert info.args == args, info
    assert m.save == [4, 6, 10, 14, 17, 20, 23]
    assert len(list(m.modules())) == 214  # YOLOv5's "214 layers"


@pytest.mark.parametrize("name", sorted(UNFUSED))
def test_stock_parameter_counts(name):
    m = build_model(name, device="meta")
    assert n_params(m) == UNFUSED[name]
    assert n_params(m) - bn_params(m) == FUSED[name]
    assert m.stride.tolist() == [8.0, 16.0, 32.0]


def test_other_nc_parameter_count():
    # Detect convs: (c_in + 1) * na * (nc + 5) per level; only they change with nc
    m80 = build_model("yolov5s", device="meta")
    m3 = build_model("yolov5s", nc=3, device="meta")
    ch = [128, 256, 512]
    delta = sum((c + 1) * 3 * (80 - 3) for c in ch)
    assert n_params(m80) - n_params(m3) == delta
    assert m3.model[-1].no == 8 and m3.nc == 3
    assert n_params(build_model("yolov5n", nc=1, device="meta")) == 1872157 - sum(
        (c + 1) * 3 * 79 for c in (64, 128, 256))


def test_channels_and_depth_rounding():
    m = build_model("yolov5m", device="meta")
    # width 0.75: 64 -> 48, 1024 -> 768; depth 0.67: 9 -> 6, 3 -> 2
    assert m.layers_info[0].args[:2] == [3, 48]
    assert m.layers_info[9].args[:2] == [768, 768]
    assert m.layers_info[6].n == 6 and m.layers_info[2].n == 2
    assert make_divisible(1024 * 0.25, 8) == 256 and make_divisible(20.1, 8) == 24


def test_anchors_strides_and_bias_init():
    torch.manual_seed(0)
    m = build_model("yolov5s")
    d = m.model[-1]
    assert isinstance(d, Detect)
    expected = torch.tensor([[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
                            dtype=torch.float32).view(3, 3, 2) / torch.tensor([8.0, 16.0, 32.0]).view(3, 1, 1)
    assert torch.allclose(d.anchors, expected)
    for conv, s, c_in in zip(d.m, d.stride, (128, 256, 512)):
        b = conv.bias.detach().view(3, -1)
        bound = 1 / math.sqrt(c_in)  # default Conv2d bias init is U(-bound, bound)
        obj = b[:, 4] - math.log(8 / (640 / s) ** 2)
        cls = b[:, 5:] - math.log(0.6 / (80 - 0.99999))
        assert obj.abs().max() <= bound and cls.abs().max() <= bound
        assert b[:, :4].abs().max() <= bound
    bn = m.model[0].bn
    assert bn.eps == 1e-3 and bn.momentum == 0.03


def test_output_shapes_train_and_eval():
    m = build_model("yolov5n")
    x = torch.zeros(2, 3, 128, 96)
    m.train()
    out = m(x)
    assert [tuple(o.shape) for o in out] == [(2, 3, 16, 12, 85), (2, 3, 8, 6, 85), (2, 3, 4, 3, 85)]
    m.eval()
    with torch.no_grad():
        pred, raw = m(x)
    assert pred.shape == (2, 3 * (16 * 12 + 8 * 6 + 4 * 3), 85)
    assert [tuple(o.shape) for o in raw] == [(2, 3, 16, 12, 85), (2, 3, 8, 6, 85), (2, 3, 4, 3, 85)]
    assert (pred[..., 4:] >= 0).all() and (pred[..., 4:] <= 1).all()


def test_eval_decoding_matches_yolov5_formula():
    torch.manual_seed(1)
    m = build_model("yolov5n", nc=2).eval()
    with torch.no_grad():
        pred, raw = m(torch.rand(1, 3, 64, 64))
    d = m.model[-1]
    p = raw[0][0, 1, 3, 5].sigmoid()  # anchor 1, row 3, column 5 at stride 8
    x = (p[0] * 2 - 0.5 + 5) * 8
    w = (p[2] * 2) ** 2 * d.anchors[0, 1, 0] * 8
    k = 1 * 8 * 8 + 3 * 8 + 5
    assert torch.allclose(pred[0, k, 0], x) and torch.allclose(pred[0, k, 2], w)


def test_community_modules_build_and_run(tmp_path):
    cfg = load_cfg("yolov5n")
    cfg.pop("_source")
    cfg["backbone"] = [
        [-1, 1, "Focus", [64, 3]],
        [-1, 1, "GhostConv", [128, 3, 2]],
        [-1, 3, "C3Ghost", [128]],
        [-1, 1, "DWConv", [256, 3, 2]],
        [-1, 3, "C3x", [256]],
        [-1, 1, "Conv", [512, 3, 2]],
        [-1, 3, "BottleneckCSP", [512]],
        [-1, 1, "Conv", [1024, 3, 2]],
        [-1, 1, "C3TR", [1024]],
        [-1, 1, "SPP", [1024, [5, 9, 13]]],
    ]
    path = tmp_path / "community.yaml"
    path.write_text(yaml.safe_dump(cfg))
    m = build_model(str(path))
    out = m(torch.zeros(1, 3, 64, 64))
    assert len(out) == 3 and out[0].shape[-1] == 85


def _write(tmp_path, cfg, name="bad.yaml") -> str:
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return str(p)


def _stock():
    cfg = load_cfg("yolov5n")
    cfg.pop("_source")
    return cfg


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda c: c.pop("head"), ["missing key", "head"]),
        (lambda c: c["backbone"].__setitem__(2, [-1, 3, "C4", [128]]), ["layer 2", "unknown module 'C4'"]),
        (lambda c: c["head"].__setitem__(2, [[-1, 30], 1, "Concat", [1]]), ["layer 12", "points forward"]),
        (lambda c: c["head"].__setitem__(2, [[-1, -20], 1, "Concat", [1]]), ["layer 12", "out of range"]),
        (lambda c: c["head"].__setitem__(2, [[-1, 4], 1, "Concat", [1]]), ["layer 12", "do not fit"]),
        (lambda c: c["backbone"].__setitem__(1, [-1, 1, "Conv", [128, 3, 2, 1, 1, 1, 1, 1]]),
         ["layer 1", "wrong arguments"]),
        (lambda c: c["backbone"].__setitem__(1, [-1, 1, "Conv", []]), ["layer 1", "output channel count"]),
        (lambda c: c["backbone"].__setitem__(1, [-1, 1, "Conv"]), ["layer 1", "[from, number, module, args]"]),
        (lambda c: c["head"].__setitem__(-1, [[17, 20], 1, "Detect", ["nc", "anchors"]]), ["layer 24", "anchors"]),
        (lambda c: c.__setitem__("nc", 0), ["nc must be a positive integer"]),
    ],
)
def test_bad_model_yaml(tmp_path, mutate, words):
    cfg = _stock()
    mutate(cfg)
    path = _write(tmp_path, cfg)
    with pytest.raises(NasError) as e:
        build_model(path, device="meta")
    msg = str(e.value)
    assert "\n" not in msg and path in msg
    for w in words:
        assert w in msg


def test_not_a_model_yaml_and_syntax_error(tmp_path):
    with pytest.raises(NasError, match="not a YOLOv5 model YAML"):
        build_model(_write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(NasError, match=r"bad.yaml:3:\d+: YAML syntax error"):
        build_model(_write(tmp_path, "nc: 80\nbackbone: [[-1, 1, Conv, [64]]\nhead: [\n"))
    with pytest.raises(NasError, match="not found"):
        build_model(str(tmp_path / "missing.yaml"))
    with pytest.raises(NasError, match="unknown model"):
        build_model("yolov9")
