"""FLA, Focused Linear Attention (Han et al., ICCV 2023, "FLatten Transformer").

Official code: LeapLabTHU/FLatten-Transformer.

Follows `FocusedLinearAttention` of `models/flatten_pvt_v2.py` with sr_ratio=1 and linear=False (global
linear attention over every pixel, the configuration of the PVT stages with no spatial reduction), with
the models' qkv_bias=True and PVT-v2's weight initialisation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from blocks._common import Conv2d, full_precision, like_input
from blocks.registry import BlockError, divides, int_in, register

#: side of the learned positional-encoding grid: the official sr_ratio=1 setting (PVT stage 4 at 224 px,
#: and Swin's 7x7 windows) learns a 7x7 = 49-token encoding; here it is resampled to any H x W.
POS_REF = 7


HEADS = [1, 2, 4, 8]


def check(channels: int, hp: dict[str, Any]) -> None:
    """num_heads divides the channels; focusing_factor in [1, 8]; kernel_size odd, 1..31."""
    int_in("FLA", "num_heads", hp["num_heads"], 1, channels, examples=HEADS)
    divides("FLA", "num_heads", hp["num_heads"], channels, HEADS)
    p = hp["focusing_factor"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 1 <= p <= 8:
        raise BlockError(f"FLA: focusing_factor={p!r} must be a number between 1 and 8 (the paper uses 3)")
    int_in("FLA", "kernel_size", hp["kernel_size"], 1, 31, odd=True, examples=[3, 5, 7])


@register("FLA", choices={"num_heads": HEADS, "focusing_factor": [2, 3, 4], "kernel_size": [3, 5, 7]},
          check=check, aliases=["FocusedLinearAttention"],
          summary="Focused Linear Attention (Han et al., ICCV 2023): global linear attention + DWC")
class FLA(nn.Module):
    """Focused linear attention over all H*W pixels, NCHW in and out, plus the depthwise-conv rank restorer.

    Same math as the official module: q, kv and output linears; k += positional encoding; ReLU kernel,
    division by a learned softplus scale, the focusing function x**p rescaled to the norm of x; linear
    attention q (kᵀv) normalised by q·mean(k); plus a depthwise conv (shared by all heads) of v.
    Differences, all forced by use inside a CNN at many sizes:
    - the positional encoding is a learned 7x7 grid (the official 49-token one, zero-initialised)
      bilinearly resampled to H x W instead of a fixed-length vector tied to one resolution;
    - the focusing map, normaliser and attention products run in float32 with autocast off (under float16
      autocast x**3 and q·mean(k) overflow); the q/kv/output linears and the conv still autocast.
    """

    def __init__(self, channels: int, num_heads: int = 8, focusing_factor: float = 3, kernel_size: int = 5
                 ) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"FLA: num_heads={num_heads} does not divide channels={channels}")
        self.channels = channels
        self.num_heads = num_heads
        self.focusing_factor = focusing_factor
        self.kernel_size = kernel_size
        head_dim = channels // num_heads
        self.q = nn.Linear(channels, channels, bias=True)
        self.kv = nn.Linear(channels, 2 * channels, bias=True)
        self.proj = nn.Linear(channels, channels)
        self.dwc = Conv2d(head_dim, head_dim, kernel_size, padding=kernel_size // 2, groups=head_dim)
        self.scale = nn.Parameter(torch.zeros(1, 1, channels))
        self.positional_encoding = nn.Parameter(torch.zeros(1, POS_REF * POS_REF, channels))
        for m in (self.q, self.kv, self.proj):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        # PVT-v2 init: normal(0, sqrt(2 / fan_out)), fan_out = k*k*out/groups = k*k
        nn.init.normal_(self.dwc.weight, 0.0, (2.0 / (kernel_size * kernel_size)) ** 0.5)
        nn.init.zeros_(self.dwc.bias)

    def _pos(self, h: int, w: int) -> torch.Tensor:
        """The positional encoding as (1, h*w, C), resampled from the learned 7x7 grid."""
        pe = self.positional_encoding
        if (h, w) == (POS_REF, POS_REF):
            return pe
        grid = pe.transpose(1, 2).reshape(1, self.channels, POS_REF, POS_REF)
        grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        return grid.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        heads = self.num_heads
        tokens = x.flatten(2).transpose(1, 2)  # (b, n, c)
        q = self.q(tokens)
        k, v = self.kv(tokens).chunk(2, dim=-1)
        with full_precision(x.device):
            q, k, vf = q.float(), k.float(), v.float()
            k = k + self._pos(h, w).float()
            scale = F.softplus(self.scale.float())
            q = (F.relu(q) + 1e-6) / scale
            k = (F.relu(k) + 1e-6) / scale
            q_norm = q.norm(dim=-1, keepdim=True)
            k_norm = k.norm(dim=-1, keepdim=True)
            q = q ** self.focusing_factor
            k = k ** self.focusing_factor
            q = q / q.norm(dim=-1, keepdim=True) * q_norm
            k = k / k.norm(dim=-1, keepdim=True) * k_norm
            q = q.reshape(b, n, heads, -1).transpose(1, 2)  # (b, heads, n, d)
            k = k.reshape(b, n, heads, -1).transpose(1, 2)
            vf = vf.reshape(b, n, heads, -1).transpose(1, 2)
            z = 1.0 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)  # (b, heads, n, 1)
            kv = (k.transpose(-2, -1) * n ** -0.5) @ (vf * n ** -0.5)  # (b, heads, d, d)
            out = (q @ kv) * z
        out = out.transpose(1, 2).reshape(b, n, c).to(v.dtype)
        # depthwise conv of v, one conv shared by the heads: (b*heads, d, h, w); contiguous, because the
        # conv's backward on this permuted view takes a slow strided path (2-3x slower here)
        v_maps = v.reshape(b, n, heads, -1).permute(0, 2, 3, 1).reshape(b * heads, c // heads, h, w)
        v_maps = like_input(v_maps, x)
        out = out + self.dwc(v_maps).reshape(b, c, n).transpose(1, 2)
        out = self.proj(out)
        return like_input(out.transpose(1, 2).reshape(b, c, h, w), x)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_heads={self.num_heads}, "
                f"focusing_factor={self.focusing_factor}, kernel_size={self.kernel_size}")
