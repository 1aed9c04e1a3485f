"""The proxy's training hyperparameters (YOLOv5 names) and the optimiser and learning-rate schedule they set."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from nas.data import Augment
from nas.errors import NasError


@dataclass(frozen=True)
class Hyp:
    """Training hyperparameters, YOLOv5 names; hyp.scratch-low values except where a proxy differs.

    Proxy changes, measured on the synthetic data (yolov5n, 256 px, 10 epochs x 256 images): lr0 0.05
    instead of 0.01 (fitness 0.21 against 0.06 at 0.01); nbs 8 so that the default batch of 8 steps the
    optimiser every batch (YOLOv5's nbs 64 would accumulate 8 batches and leave a proxy ~40 steps);
    warmup_epochs 1 instead of 3, and warm-up never longer than a third of the run.
    """

    lr0: float = 0.05
    lrf: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    nbs: int = 8
    cos_lr: bool = False
    max_grad_norm: float = 10.0
    box: float = 0.05
    cls: float = 0.5
    obj: float = 1.0
    anchor_t: float = 4.0
    # augmentation: the defaults live in nas.data.Augment, which these feed
    fliplr: float = Augment.fliplr
    hsv_h: float = Augment.hsv_h
    hsv_s: float = Augment.hsv_s
    hsv_v: float = Augment.hsv_v
    mosaic: float = Augment.mosaic
    scale: float = Augment.scale
    translate: float = Augment.translate
    conf_thres: float = 0.001
    iou_thres: float = 0.6
    max_det: int = 300
    multi_label: bool = False

    @classmethod
    def from_any(cls, hyp: Hyp | dict | None) -> Hyp:
        """A Hyp from None (defaults), a Hyp, or a dict of overrides (unknown keys -> NasError)."""
        if hyp is None:
            return cls()
        if isinstance(hyp, Hyp):
            return hyp
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(hyp) - known)
        if unknown:
            raise NasError(f"unknown training hyperparameter(s) {unknown}; known: {sorted(known)}")
        return replace(cls(), **hyp)

    def augment(self) -> Augment:
        """The augmentation part."""
        return Augment(self.fliplr, self.hsv_h, self.hsv_s, self.hsv_v, self.mosaic, self.scale, self.translate)


def build_optimizer(model: nn.Module, hyp: Hyp, batch: int) -> torch.optim.SGD:
    """Nesterov SGD with YOLOv5's three groups: 0 biases, 1 weights with decay, 2 norm weights (no decay).

    Decay is scaled by batch x accumulate / nbs (YOLOv5's rule).
    """
    accumulate = max(round(hyp.nbs / batch), 1)
    decay = hyp.weight_decay * batch * accumulate / hyp.nbs
    biases, decayed, norms = [], [], []
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            if name == "bias":
                biases.append(p)
            elif name == "weight" and "Norm" in type(m).__name__:
                norms.append(p)
            else:
                decayed.append(p)
    opt = torch.optim.SGD(biases, lr=hyp.lr0, momentum=hyp.momentum, nesterov=True)
    opt.add_param_group({"params": decayed, "weight_decay": decay})
    opt.add_param_group({"params": norms, "weight_decay": 0.0})
    return opt


def lr_factor(hyp: Hyp, epochs: int) -> Callable[[float], float]:
    """Epoch -> learning-rate multiplier: linear or cosine from 1 to lrf over the run."""
    if hyp.cos_lr:
        return lambda e: ((1 - math.cos(e * math.pi / epochs)) / 2) * (hyp.lrf - 1) + 1
    return lambda e: (1 - e / epochs) * (1.0 - hyp.lrf) + hyp.lrf


__all__ = ["Hyp", "build_optimizer", "lr_factor"]
