"""SGE, Spatial Group-wise Enhance (Li, Hu & Yang, 2019), as in implus/PytorchInsight `resnet_sge.py`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from blocks._common import full_precision
from blocks.registry import divides, int_in, register

GROUPS = [4, 8, 16, 32, 64]


def check(channels: int, hp: dict[str, Any]) -> None:
    """groups: an integer dividing the channels."""
    int_in("SGE", "groups", hp["groups"], 1, channels, examples=[8, 16])
    divides("SGE", "groups", hp["groups"], channels, GROUPS)


@register("SGE", choices={"groups": GROUPS}, check=check, aliases=["SpatialGroupEnhance"],
          # the blog registration passes the channel count where `groups` goes: groups == channels
          alias_defaults={"SpatialGroupEnhance": lambda channels: {"groups": channels}},
          summary="Spatial Group-wise Enhance (Li et al. 2019): per-group spatial gate, 2*groups params")
class SGE(nn.Module):
    """Spatial Group-wise Enhance: per group, scale every position by how well it matches the group's mean.

    Follows the official PytorchInsight module: `groups` sub-features, a learnable per-group affine
    (weight initialised to 0, bias to 1, so at initialisation the output is x * sigmoid(1) everywhere)
    and no other parameters (2 * groups in all). The official mul-then-sum similarity is written as the
    matrix product it is, so FLOP counters see it (2*C*H*W). Two robustness changes that leave the math
    unchanged wherever the official one is finite: the similarity and its normalisation run in float32
    (float16 dot products and variances overflow), and a group with a single position (1x1 map)
    normalises to 0 instead of NaN (the unbiased std of one element).
    """

    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"SGE: groups={groups} does not divide channels={channels}")
        self.channels = channels
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        xg = x.reshape(b, self.groups, c // self.groups, h * w)  # a view in NCHW and in channels_last
        with full_precision(x.device):
            xf = xg.float()
            # similarity of every position to its group's mean feature: a (1 x c/g) @ (c/g x hw) product
            t = (xf.mean(dim=3, keepdim=True).transpose(2, 3) @ xf).reshape(b * self.groups, h * w)
            t = t - t.mean(dim=1, keepdim=True)
            std = t.std(dim=1, keepdim=True, correction=1 if h * w > 1 else 0) + 1e-5
            t = (t / std).reshape(b, self.groups, h, w)
            t = t * self.weight.float() + self.bias.float()
            gate = torch.sigmoid(t).reshape(b, self.groups, 1, h * w)
        return (xg * gate.to(x.dtype)).reshape(b, c, h, w)  # the product keeps x's layout

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}"


__all__ = ["SGE"]
