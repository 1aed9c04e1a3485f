"""Parameters and GFLOPs of a model, a module or a block, counted on the meta device (no weights, no activations).

GFLOPs = 2 x multiply-accumulates of every convolution and matrix product (matmul, bmm, einsum, linear,
scaled-dot-product attention) at the real input size, as torch.utils.flop_counter counts them.
`thop_gflops` gives the figure YOLOv5 prints beside it (thop at a 32x32 input, scaled by area, BatchNorm
included), so users can compare with numbers from YOLOv5 logs.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import blocks
from nas.errors import NasError
from nas.lazy import lazy
from nas.model.build import build_model, parse_imgsz
from nas.model.common import Conv
from nas.model.parse import layer_inputs
from nas.model.yolo import DetectionModel, meta_fast_norms

thop = lazy("thop")  # optional: only for the figure YOLOv5's model summary prints


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
            profile = thop.profile
    except ImportError:  # not installed, or Python >= 3.12 where thop's distutils import fails
        return None
    m = copy.deepcopy(_meta_model(model, nc))
    h, w = parse_imgsz(imgsz, int(max(m.stride.max().item(), 32)))
    s = max(int(m.stride.max().item()), 32)
    logging.getLogger("thop").setLevel(logging.ERROR)
    with torch.no_grad(), meta_fast_norms(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        macs = profile(m, inputs=(torch.empty(1, m.yaml.get("ch", 3), s, s, device="meta"),), verbose=False)[0]
    return float(macs) * 2 / 1e9 * (h / s) * (w / s)


def at_multiples(cfg: dict, gd: float, gw: float, imgsz: int | str | tuple[int, int], per_layer: bool = False) -> Cost:
    """The cost of a base model dict at the given depth and width multiples."""
    return count(dict(cfg, depth_multiple=gd, width_multiple=gw), imgsz, per_layer=per_layer)


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


__all__ = ["BlockCost", "Cost", "LayerCost", "at_multiples", "block_costs", "count", "module_flops", "thop_gflops"]
