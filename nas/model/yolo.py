"""YOLOv5 v7.0 `models/yolo.py`: DetectionModel, built from a model YAML dict by parse_model (parse.py), with the
same layer order, stride, anchors and initialisation; its head Detect lives in detect.py."""

from __future__ import annotations

import contextlib
import math
from copy import deepcopy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nas.errors import NasError
from nas.model.detect import Detect, check_anchor_order
from nas.model.parse import layer_inputs, layer_where, parse_model


def initialize_weights(model: nn.Module) -> None:
    """YOLOv5's post-build settings: BatchNorm eps 1e-3 and momentum 0.03, in-place activations."""
    for m in model.modules():
        t = type(m)
        if t is nn.BatchNorm2d:
            m.eps = 1e-3
            m.momentum = 0.03
        elif t in (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU):
            m.inplace = True


@contextlib.contextmanager
def meta_fast_norms():
    """Within the block, BatchNorm passes meta tensors through unchanged.

    BatchNorm does no multiply-accumulates that we count, and its meta kernel is a slow Python
    decomposition (~2 ms a call), which would dominate the cost of counting a candidate's FLOPs.
    Real tensors are unaffected.
    """
    original = _BatchNorm.forward

    def forward(self, x):
        return x if x.device.type == "meta" else original(self, x)

    _BatchNorm.forward = forward
    try:
        yield
    finally:
        _BatchNorm.forward = original


class DetectionModel(nn.Module):
    """A YOLOv5 detection model built from a model YAML dict (ultralytics v7.0 semantics)."""

    def __init__(self, cfg: dict, ch: int = 3, nc: int | None = None, anchors=None, source: str | None = None):
        super().__init__()
        self.yaml = deepcopy(cfg)
        self.source = source
        ch = self.yaml["ch"] = self.yaml.get("ch", ch)
        if nc and nc != self.yaml["nc"]:
            self.yaml["nc"] = nc
        if anchors:
            self.yaml["anchors"] = round(anchors)
        self.model, self.save, self.layers_info = parse_model(deepcopy(self.yaml), ch=[ch], source=source)
        self.nc = self.yaml["nc"]
        self.names = [str(i) for i in range(self.nc)]
        self.inplace = self.yaml.get("inplace", True)

        m: Detect = self.model[-1]
        s = 256  # 2x the largest stride
        m.inplace = self.inplace
        device = m.anchors.device
        with torch.no_grad():
            if device.type == "meta":  # shapes only: eval-mode layers and no-op norms are enough (and fast)
                with meta_fast_norms():
                    self.eval()
                    m.train()
                    outs = self._forward_checked(torch.zeros(1, ch, s, s, device=device))
                    self.train()
            else:  # the same zero-image forward as YOLOv5 (it also updates BatchNorm running statistics)
                outs = self._forward_checked(torch.zeros(1, ch, s, s, device=device))
        m.stride = torch.tensor([s / x.shape[-2] for x in outs], device="cpu")
        if device.type != "meta":
            m.stride = m.stride.to(device)
            check_anchor_order(m)
            m.anchors /= m.stride.view(-1, 1, 1)
            self._initialize_biases()
        else:  # shapes only: the stride stays on the CPU so its values are known
            m.anchors = m.anchors / m.stride.view(-1, 1, 1).to(device)
        self.stride = m.stride
        initialize_weights(self)

    def forward(self, x: torch.Tensor):
        return self._forward_once(x)

    def _forward_once(self, x: torch.Tensor):
        y = []
        for m in self.model:
            x = layer_inputs(m.f, x, y)
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def _forward_checked(self, x: torch.Tensor):
        """A forward pass that names the layer whose shapes do not fit (used once at build time)."""
        y = []
        for m in self.model:
            x = layer_inputs(m.f, x, y)
            try:
                x = m(x)
            except NasError:
                raise
            except (RuntimeError, ValueError, IndexError, TypeError) as e:
                shapes = [tuple(t.shape) for t in x] if isinstance(x, list) else tuple(x.shape)
                msg = str(e).splitlines()[0]
                raise NasError(f"{layer_where(self.source, m.i, m.type)}: inputs of shape {shapes} do not fit ({msg}); "
                               f"check its 'from' indices and channel arguments") from None
            y.append(x if m.i in self.save else None)
        return x

    def _initialize_biases(self, cf: torch.Tensor | None = None) -> None:
        """Detect bias priors: ~8 objects per 640 image per level, and a 0.6 class prior."""
        m = self.model[-1]
        for mi, s in zip(m.m, m.stride):
            b = mi.bias.view(m.na, -1)
            b.data[:, 4] += math.log(8 / (640 / s) ** 2)
            b.data[:, 5:5 + m.nc] += math.log(0.6 / (m.nc - 0.99999)) if cf is None else torch.log(cf / cf.sum())
            mi.bias = torch.nn.Parameter(b.view(-1), requires_grad=True)

    def _apply(self, fn, recurse=True):
        # move Detect's stride with the model, as YOLOv5 does; drop its cached grids (rebuilt at the next eval
        # forward), which fn may not apply to: .to(memory_format=torch.channels_last) refuses 5-d tensors
        self = super()._apply(fn, recurse)
        m = self.model[-1]
        m.stride = fn(m.stride)
        m.grid = [torch.empty(0) for _ in m.grid]
        m.anchor_grid = [torch.empty(0) for _ in m.anchor_grid]
        self.stride = m.stride
        return self


__all__ = ["Detect", "DetectionModel", "initialize_weights", "meta_fast_norms"]
