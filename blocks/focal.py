"""FocalModulation (Yang et al., NeurIPS 2022, "Focal Modulation Networks"), microsoft/FocalNet.

Follows `FocalModulation` of `classification/focalnet.py` with its defaults (bias=True,
use_postln_in_modulation=False, normalize_modulator=False) and FocalNet's srf setting focal_level=2,
focal_window=3, focal_factor=2, with FocalNet's weight initialisation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from blocks._common import Conv2d, like_input
from blocks.registry import BlockError, int_in, register


def check(channels: int, hp: dict[str, Any]) -> None:
    """focal_level 1..8; focal_window odd 1..31; focal_factor even 0..8 (every focal kernel stays odd)."""
    int_in("FocalModulation", "focal_level", hp["focal_level"], 1, 8, examples=[1, 2, 3])
    int_in("FocalModulation", "focal_window", hp["focal_window"], 1, 31, odd=True, examples=[3, 5, 7])
    f = hp["focal_factor"]
    int_in("FocalModulation", "focal_factor", f, 0, 8, examples=[2])
    if f % 2:
        raise BlockError(f"FocalModulation: focal_factor={f} must be even so every focal kernel stays odd; "
                         f"use {f - 1} or {f + 1}")


@register("FocalModulation", check=check, aliases=["FocalModulation"],
          choices={"focal_level": [1, 2, 3], "focal_window": [3, 5, 7], "focal_factor": [2]},
          summary="Focal Modulation (Yang et al., NeurIPS 2022): gated multi-level context; can replace SPPF")
class FocalModulation(nn.Module):
    """Focal modulation, NCHW in, (N, c2, H, W) out, so it can also replace SPPF (c1 -> c2).

    Same math as the official module: a linear gives the query, the context and focal_level+1 gates;
    focal_level depthwise convs (kernel focal_factor*l + focal_window, GELU) build ever wider context,
    plus a global average context (GELU), summed with the gates; a 1x1 conv turns the sum into the
    modulator that multiplies the query; an output linear. The only change: the output linear maps to c2
    (the official one is dim -> dim, which is the c2 == c1 case), gates/modulator are not kept on the
    module (the official stores them as attributes), and the official input linear `f` is named
    `pre_linear` because YOLOv5's parse_model sets `.f` (the from-index) on every layer.
    """

    def __init__(self, c1: int, c2: int | None = None, focal_level: int = 2, focal_window: int = 3,
                 focal_factor: int = 2) -> None:
        super().__init__()
        c2 = c1 if c2 is None else c2
        self.c1, self.c2 = c1, c2
        self.focal_level = focal_level
        self.focal_window = focal_window
        self.focal_factor = focal_factor
        self.pre_linear = nn.Linear(c1, 2 * c1 + focal_level + 1)  # the official `f`
        self.h = nn.Conv2d(c1, c1, kernel_size=1)
        self.act = nn.GELU()
        self.proj = nn.Linear(c1, c2)
        self.focal_layers = nn.ModuleList()
        for level in range(focal_level):
            k = focal_factor * level + focal_window
            self.focal_layers.append(nn.Sequential(
                Conv2d(c1, c1, k, padding=k // 2, groups=c1, bias=False), nn.GELU()))
        for m in (self.pre_linear, self.proj):  # FocalNet._init_weights
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.c1
        y = like_input(self.pre_linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), x)  # (b, 2c+L+1, h, w)
        q, ctx, gates = torch.split(y, (c, c, self.focal_level + 1), dim=1)
        ctx_all = 0
        for level, layer in enumerate(self.focal_layers):
            ctx = layer(ctx)
            ctx_all = ctx_all + ctx * gates[:, level:level + 1]
        ctx_global = self.act(ctx.mean(dim=(2, 3), keepdim=True))
        ctx_all = ctx_all + ctx_global * gates[:, self.focal_level:]
        out = q * self.h(ctx_all)
        return like_input(self.proj(out.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), x)

    def extra_repr(self) -> str:
        return (f"c1={self.c1}, c2={self.c2}, focal_level={self.focal_level}, "
                f"focal_window={self.focal_window}, focal_factor={self.focal_factor}")
