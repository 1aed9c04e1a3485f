"""Parameters and GFLOPs of a model or module, counted on the meta device (no weights, no activations).

GFLOPs = 2 x multiply-accumulates of every convolution and matrix product (matmul, bmm, einsum, linear,
scaled-dot-product attention) at the real input size, as torch.utils.flop_counter counts them.
`thop_gflops` gives the figure YOLOv5 prints beside it (thop at a 32x32 input, scaled by area, BatchNorm
included), so users can compare with numbers from YOLOv5 logs.
"""

from __future__ import annotations

import copy
import itertools
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.errors import NasError
from nas.model import DetectionModel, build_model, layer_inputs, parse_imgsz, source_index
from nas.model.yolo import meta_fast_norms

if TYPE_CHECKING:
    from nas.space import Architecture, Space


@dataclass
class LayerCost:
    """One model layer: the YAML row as built and what it costs at the profiled size."""

    i: int
    f: int | list[int]
    n: int
    module: str
    args: list[Any]
    params: int
    flops: float
    out_shape: tuple[int, ...] = ()


@dataclass
class Cost:
    """Parameters and FLOPs of a model at one input size."""

    params: int
    flops: float
    imgsz: tuple[int, int]
    layers: list[LayerCost] = field(default_factory=list)

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def _meta_model(model: str | Path | dict | DetectionModel, nc: int | None) -> DetectionModel:
    if isinstance(model, DetectionModel):
        if next(model.parameters()).device.type == "meta" and nc in (None, model.nc):
            return model
        cfg = dict(model.yaml)
        cfg["_source"] = model.source or "model"
        return build_model(cfg, nc=nc, device="meta")
    return build_model(model, nc=nc, device="meta")


def count(model: str | Path | dict | DetectionModel, imgsz: int | str | tuple[int, int] = 640,
          nc: int | None = None, per_layer: bool = False) -> Cost:
    """Params and FLOPs of a YOLOv5 model (name, YAML path, dict or built model) at imgsz, on the meta device."""
    m = _meta_model(model, nc)
    h, w = parse_imgsz(imgsz, int(max(m.stride.max().item(), 32)))
    params = sum(p.numel() for p in m.parameters())
    layers: list[LayerCost] = []
    counter = FlopCounterMode(display=False)
    was_training = m.training
    m.eval()
    try:
        with torch.no_grad(), meta_fast_norms(), counter:
            y: list[Any] = []
            x: Any = torch.empty(1, m.yaml.get("ch", 3), h, w, device="meta")
            before = 0
            for layer, info in zip(m.model, m.layers_info):
                x = layer_inputs(layer.f, x, y)
                x = layer(x)
                y.append(x if layer.i in m.save else None)
                if per_layer:
                    total = counter.get_total_flops()
                    shape = tuple(x[0].shape) if isinstance(x, tuple) else tuple(x.shape)
                    layers.append(LayerCost(info.i, info.f, info.n, info.module, info.args, info.params,
                                            float(total - before), shape))
                    before = total
    finally:
        m.train(was_training)
    return Cost(params=params, flops=float(counter.get_total_flops()), imgsz=(h, w), layers=layers)


def module_flops(module: nn.Module, input_shape: tuple[int, ...]) -> float:
    """FLOPs (2 x MACs) of one forward of any module on one input of input_shape, counted on the meta device."""
    meta = module if _on_meta(module) else copy.deepcopy(module).to("meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), meta_fast_norms(), counter:
        meta(torch.empty(*input_shape, device="meta"))
    return float(counter.get_total_flops())


def _on_meta(module: nn.Module) -> bool:
    t = next(iter(module.parameters()), None)
    return t is None or t.device.type == "meta"


def thop_gflops(model: str | Path | dict | DetectionModel, imgsz: int | str | tuple[int, int] = 640,
                nc: int | None = None) -> float | None:
    """The GFLOPs figure YOLOv5's model summary prints: thop at a stride-sized input, scaled to imgsz.

    thop counts convolutions and BatchNorm (not matmuls inside attention), and the scaling assumes every
    operation grows linearly with the number of pixels, which attention does not. None if thop is missing.
    """
    try:
        with warnings.catch_warnings():  # thop 0.1.1 still compares versions with distutils
            warnings.simplefilter("ignore", DeprecationWarning)
            import thop
    except ImportError:  # not installed, or Python >= 3.12 where thop's distutils import fails
        return None
    m = copy.deepcopy(_meta_model(model, nc))
    h, w = parse_imgsz(imgsz, int(max(m.stride.max().item(), 32)))
    s = max(int(m.stride.max().item()), 32)
    logging.getLogger("thop").setLevel(logging.ERROR)
    with torch.no_grad(), meta_fast_norms(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        macs = thop.profile(m, inputs=(torch.empty(1, m.yaml.get("ch", 3), s, s, device="meta"),), verbose=False)[0]
    return float(macs) * 2 / 1e9 * (h / s) * (w / s)


def at_multiples(cfg: dict, gd: float, gw: float, imgsz: int | str | tuple[int, int], per_layer: bool = False) -> Cost:
    """The cost of a base model dict at the given depth and width multiples."""
    return count(dict(cfg, depth_multiple=gd, width_multiple=gw), imgsz, per_layer=per_layer)


# ---------------------------------------------------------------------------- per-slot costs of a space
# Costs are additive over points (a block never changes the shapes around it), so one count of the base and
# one count per block give the exact cost of every architecture of a space.


@dataclass
class SlotCost:
    """What one block choice (with one hyperparameter setting) adds at one point."""

    point: str
    block: str
    hyperparameters: dict[str, Any]
    params: int
    flops: float
    shape: tuple[int, int, int]  # C, H, W of the feature map at the point


def slot_costs(space: Space, gd: float, gw: float) -> list[SlotCost]:
    """Exact params/FLOPs deltas of every choice at every point, at the given multiples and space.imgsz."""
    import blocks
    from nas.space import block_configs

    base = at_multiples(space.base_cfg, gd, gw, space.imgsz, per_layer=True)
    rows = space.base_cfg["backbone"] + space.base_cfg["head"]
    out = []
    for p in space.points:
        layer = base.layers[p.layer]
        if p.kind == "insert":
            shape = layer.out_shape
            c2 = None
            minus_params, minus_flops = 0, 0.0
        else:
            shape = base.layers[source_index(rows[p.layer][0], p.layer)].out_shape
            c2 = layer.out_shape[1]
            minus_params, minus_flops = layer.params, layer.flops
        for b in p.blocks:
            if b == p.empty:
                out.append(SlotCost(p.name, b, {}, 0, 0.0, tuple(shape[1:])))
                continue
            for hp in block_configs(p, b):
                with torch.device("meta"):
                    module = blocks.build(b, shape[1], c2=c2, **hp)
                params = sum(t.numel() for t in module.parameters())
                flops = module_flops(module, tuple(shape))
                out.append(SlotCost(p.name, b, hp, params - minus_params, flops - minus_flops, tuple(shape[1:])))
    return out


_COST_TABLES: dict[tuple[str, float, float], tuple[int, float, list[SlotCost]]] = {}


def cost_table(space: Space, gd: float, gw: float) -> tuple[int, float, list[SlotCost]]:
    """(base params, base FLOPs, slot costs) at the given multiples, computed once per space and multiples."""
    key = (space.hash, gd, gw)
    if key not in _COST_TABLES:
        base = at_multiples(space.base_cfg, gd, gw, space.imgsz)
        _COST_TABLES[key] = (base.params, base.flops, slot_costs(space, gd, gw))
    return _COST_TABLES[key]


def predict_cost(space: Space, arch: Architecture) -> tuple[int, float]:
    """(params, FLOPs) of an architecture: the base's cost plus each point's exact delta."""
    params, flops, slots = cost_table(space, arch.depth_multiple, arch.width_multiple)
    for p in space.points:
        choice = arch.choices[p.name]
        hp = {k: v for k, v in choice.items() if k != "block"}
        match = [s for s in slots if s.point == p.name and s.block == choice["block"] and s.hyperparameters == hp]
        if not match:
            raise NasError(f"{space.path}: point {p.name!r}: {arch.short()[p.name]} is not a choice of this space")
        params += match[0].params
        flops += match[0].flops
    return params, flops


@dataclass
class SpaceCost:
    """The cost range of a space at one pair of multiples: base, smallest and largest architecture, slots."""

    depth_multiple: float
    width_multiple: float
    base_gflops: float
    base_params: int
    min_gflops: float
    min_params: int
    max_gflops: float
    max_params: int
    slots: list[SlotCost]


def space_costs(space: Space) -> list[SpaceCost]:
    """Per pair of multiples: what the base costs and the cheapest and dearest choice at every point add."""
    out = []
    for gd, gw in itertools.product(space.depth_multiple, space.width_multiple):
        base_params, base_flops, slots = cost_table(space, gd, gw)
        lo_f = hi_f = base_flops
        lo_p = hi_p = base_params
        for p in space.points:
            mine = [s for s in slots if s.point == p.name]
            lo = min(mine, key=lambda s: (s.flops, s.params))
            hi = max(mine, key=lambda s: (s.flops, s.params))
            lo_f, lo_p, hi_f, hi_p = lo_f + lo.flops, lo_p + lo.params, hi_f + hi.flops, hi_p + hi.params
        out.append(SpaceCost(gd, gw, base_flops / 1e9, base_params, lo_f / 1e9, lo_p, hi_f / 1e9, hi_p, slots))
    return out


# ------------------------------------------------------------------------------------- one block alone


@dataclass
class BlockCost:
    """One block at its defaults on one feature map (`nas blocks`)."""

    block: str
    hyperparameters: dict[str, Any]
    params: int
    gflops: float
    changes_channels: bool
    summary: str


def block_costs(channels: int, h: int, w: int) -> list[BlockCost]:
    """Every registered block at its defaults, after a YOLOv5 3x3 Conv of the same width for reference:
    params and GFLOPs of one forward on a (1, channels, h, w) feature map."""
    import blocks
    from nas.model.common import Conv

    shape = (1, channels, h, w)
    with torch.device("meta"):
        conv = Conv(channels, channels, 3, 1)
    rows = [BlockCost("Conv", {"k": 3, "s": 1}, sum(p.numel() for p in conv.parameters()),
                      module_flops(conv.eval(), shape) / 1e9, True,
                      "YOLOv5 Conv (3x3 conv, BN, SiLU) of the same width, for reference")]
    for name, spec in blocks.REGISTRY.items():
        try:
            hp = blocks.yaml_hyperparameters(name, channels, [])
            with torch.device("meta"):
                m = blocks.build(name, channels, **hp)
        except blocks.BlockError as e:
            raise NasError(f"--channels {channels}: {e}") from None
        rows.append(BlockCost(name, hp, sum(p.numel() for p in m.parameters()), module_flops(m.eval(), shape) / 1e9,
                              spec.changes_channels, spec.summary))
    return rows


__all__ = ["BlockCost", "Cost", "LayerCost", "SlotCost", "SpaceCost", "at_multiples", "block_costs", "cost_table",
           "count", "module_flops", "predict_cost", "slot_costs", "space_costs", "thop_gflops"]
