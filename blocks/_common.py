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
