"""Helpers shared by the blocks."""

from __future__ import annotations

import contextlib

import torch
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
