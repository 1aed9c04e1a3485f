"""Helpers shared by the blocks."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.amp.autocast_mode import is_autocast_available


def full_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with autocast off on `device`, for the few float16-fragile steps (powers, variances,
    normalisers) that must run in float32; a no-op on devices without autocast (meta)."""
    if is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def like_input(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y made contiguous in x's memory format (channels_last or NCHW), so a block keeps the network's layout:
    a channels_last model stays channels_last through it, an NCHW one stays NCHW."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return y.contiguous(memory_format=torch.channels_last)
    return y.contiguous()


def _taps_covered(n: int, k: int, s: int, p: int, d: int) -> bool:
    """Whether every tap of a k-wide kernel (stride s, padding p, dilation d) reads at least one real pixel
    of an n-long input dimension at some output position, rather than only padding."""
    out = (n + 2 * p - d * (k - 1) - 1) // s + 1
    for j in range(k):
        first = -p + j * d  # input position of tap j at output 0
        o = max(0, -(first // s)) if first < 0 else 0  # first output where tap j is inside the input
        if o >= out or first + o * s > n - 1:
            return False
    return True


class Conv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, state dict and FLOPs) working around a CPU kernel bug in PyTorch 2.13: a
    reduced-precision (bf16 autocast) convolution in channels_last returns uninitialised memory, sometimes NaN,
    as the weight gradient of taps that only ever read padding (e.g. a 3x3 stride-2 conv on a 1x1 or 2x2 map:
    GE's extent-8 gather at P5) instead of 0; at 1x1 a tensor's layout is ambiguous, so forcing NCHW does not
    help. In exactly that case (a map too small for the kernel) the conv runs in float32, where the gradient
    is exact; otherwise it is nn.Conv2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        autocast = torch.is_autocast_enabled("cpu")
        if x.device.type != "cpu" or x.dim() != 4 or isinstance(self.padding, str) or not (
                autocast or x.dtype in (torch.bfloat16, torch.float16)):
            return super().forward(x)
        (kh, kw), (sh, sw), (dh, dw), (ph, pw) = self.kernel_size, self.stride, self.dilation, self.padding
        h, w = x.shape[-2:]
        if _taps_covered(h, kh, sh, ph, dh) and _taps_covered(w, kw, sw, pw, dw):
            return super().forward(x)
        with full_precision(x.device):
            y = super().forward(x.float())
        return y.to(torch.get_autocast_dtype("cpu") if autocast else x.dtype)
