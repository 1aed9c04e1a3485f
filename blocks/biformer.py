"""BiFormer's Bi-level Routing Attention (Zhu et al., CVPR 2023), rayleizhu/BiFormer.

Follows `BiLevelRoutingAttention` of `ops/bra_legacy.py` (the op inside the released BiFormer-T/S/B and
the one YOLO posts register) in the released configuration: kv_downsample_mode='identity',
param_attention='qkvo', no routing parameters, non-differentiable hard routing, qk_dim = dim, and the
op's defaults num_heads=8, n_win=7, topk=4, side_dwconv=3.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from blocks._common import Conv2d, like_input
from blocks.registry import BlockError, divides, int_in, register


def region_grid(size: int, n_win: int) -> tuple[int, int]:
    """(regions, region side) along one axis: n_win regions of ceil(size / n_win) pixels, fewer when the
    last ones would hold only padding (e.g. 15 px with n_win=7 gives 5 regions of 3)."""
    side = math.ceil(size / min(n_win, size))
    return math.ceil(size / side), side


HEADS = [1, 2, 4, 8]


def check(channels: int, hp: dict[str, Any]) -> None:
    """num_heads divides the channels; n_win 1..64; topk 1..n_win²; side_dwconv 0 or odd."""
    int_in("BiFormer", "num_heads", hp["num_heads"], 1, channels, examples=HEADS)
    divides("BiFormer", "num_heads", hp["num_heads"], channels, HEADS)
    int_in("BiFormer", "n_win", hp["n_win"], 1, 64, examples=[4, 7, 8])
    n = hp["n_win"]
    int_in("BiFormer", "topk", hp["topk"], 1, examples=[1, 4, 16])
    if hp["topk"] > n * n:
        raise BlockError(f"BiFormer: topk={hp['topk']} routes to more regions than the n_win*n_win={n * n} "
                         f"that exist; use topk <= {n * n} or a larger n_win")
    s = hp["side_dwconv"]
    int_in("BiFormer", "side_dwconv", s, 0, 31, examples=[0, 3, 5])
    if s > 0 and s % 2 == 0:
        raise BlockError(f"BiFormer: side_dwconv={s} must be 0 (no LePE) or odd; use {s - 1} or {s + 1}")


@register("BiFormer", check=check, aliases=["BiLevelRoutingAttention", "BiLevelRoutingAttention_nchw", "BRA"],
          choices={"num_heads": HEADS, "n_win": [4, 7, 8], "topk": [1, 2, 4, 8, 16], "side_dwconv": [0, 3, 5]},
          summary="Bi-level Routing Attention (Zhu et al., CVPR 2023): top-k region routing + token attention")
class BiFormer(nn.Module):
    """Bi-level routing attention, NCHW in and out.

    Same math as the official op when H and W are multiples of n_win: shared qkv linear; region-level
    routing on the detached region means of q and k keeps the topk most related regions per region;
    token-level softmax attention of each region's queries over the keys/values of its routed regions
    (scale qk_dim**-0.5, the official choice); plus LePE, a depthwise conv of v; output linear.
    Any other size works: the map is split into n_win regions per side of ceil(H / n_win) pixels (fewer
    regions when that would leave regions made only of padding, and at most H), q/k/v are zero-padded
    after the projection, region means count real pixels only, padded keys are masked out of the softmax
    (the official auto_pad leaves them in, unmasked) and the output is cropped back. topk is clamped to
    the number of regions, so small maps (down to 1x1) work.
    """

    def __init__(self, channels: int, num_heads: int = 8, n_win: int = 7, topk: int = 4, side_dwconv: int = 3
                 ) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"BiFormer: num_heads={num_heads} does not divide channels={channels}")
        self.channels = channels
        self.num_heads = num_heads
        self.n_win = n_win
        self.topk = topk
        self.side_dwconv = side_dwconv
        self.scale = channels ** -0.5
        self.qkv = nn.Linear(channels, 3 * channels)
        self.wo = nn.Linear(channels, channels)
        self.lepe = (Conv2d(channels, channels, side_dwconv, padding=side_dwconv // 2, groups=channels)
                     if side_dwconv > 0 else None)
        for m in (self.qkv, self.wo):  # BiFormer._init_weights
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        heads, d = self.num_heads, c // self.num_heads
        nh, rh = region_grid(h, self.n_win)
        nw, rw = region_grid(w, self.n_win)
        nreg, reg = nh * nw, rh * rw
        topk = min(self.topk, nreg)

        q, k, v = self.qkv(x.permute(0, 2, 3, 1)).chunk(3, dim=-1)  # (b, h, w, c) each
        q, k, v = (t.permute(0, 3, 1, 2) for t in (q, k, v))  # NCHW views

        # region-to-region routing on detached region means (avg_pool ceil_mode: real pixels only)
        q_r = F.avg_pool2d(q.detach(), (rh, rw), ceil_mode=True, count_include_pad=False)
        k_r = F.avg_pool2d(k.detach(), (rh, rw), ceil_mode=True, count_include_pad=False)
        q_r, k_r = q_r.flatten(2).transpose(1, 2), k_r.flatten(2)  # (b, nreg, c), (b, c, nreg)
        idx = torch.topk((q_r * self.scale) @ k_r, k=topk, dim=-1).indices  # (b, nreg, topk)

        ph, pw = nh * rh - h, nw * rw - w
        if ph or pw:
            q, k, v = (F.pad(t, (0, pw, 0, ph)) for t in (q, k, v))

        def regions(t: torch.Tensor) -> torch.Tensor:
            """(b, c, H, W) -> (b, heads, nreg, reg, d)."""
            t = t.reshape(b, heads, d, nh, rh, nw, rw).permute(0, 1, 3, 5, 4, 6, 2)
            return t.reshape(b, heads, nreg, reg, d)

        qs, ks, vs = regions(q), regions(k), regions(v)
        index = idx.reshape(b, 1, nreg * topk, 1, 1).expand(-1, heads, -1, reg, d)

        def gather(t: torch.Tensor) -> torch.Tensor:
            """keys/values of each region's routed regions: (b, heads, nreg, topk*reg, d). Gathering along
            the region axis (not from an nreg-times expanded view, as the official op does) keeps the
            backward from allocating nreg copies of k and v."""
            return torch.gather(t, 2, index).reshape(b, heads, nreg, topk * reg, d)

        kg, vg = gather(ks), gather(vs)
        attn = (qs * self.scale) @ kg.transpose(-2, -1)  # (b, heads, nreg, reg, topk*reg)
        if ph or pw:
            valid = torch.ones(1, 1, h, w, dtype=torch.bool, device=x.device)
            valid = F.pad(valid, (0, pw, 0, ph)).reshape(nh, rh, nw, rw).permute(0, 2, 1, 3)
            valid = valid.reshape(nreg, reg)
            valid = valid[idx].reshape(b, 1, nreg, 1, topk * reg)
            attn.masked_fill_(~valid, float("-inf"))  # in place: matmul's backward does not need attn
        if attn.dtype == torch.float32:
            attn = torch.softmax(attn, dim=-1)
        else:  # float16/bfloat16 autocast: softmax in float32
            attn = torch.softmax(attn, dim=-1, dtype=torch.float32).to(vg.dtype)
        out = attn @ vg  # (b, heads, nreg, reg, d)

        out = out.reshape(b, heads, nh, nw, rh, rw, d).permute(0, 2, 4, 3, 5, 1, 6)
        out = out.reshape(b, nh * rh, nw * rw, c)[:, :h, :w]  # NHWC, cropped
        if self.lepe is not None:
            # a contiguous input keeps the depthwise conv off PyTorch's slow strided backward
            out = out + self.lepe(like_input(v[:, :, :h, :w], x)).permute(0, 2, 3, 1)
        return like_input(self.wo(out).permute(0, 3, 1, 2), x)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_heads={self.num_heads}, n_win={self.n_win}, "
                f"topk={self.topk}, side_dwconv={self.side_dwconv}")
