"""Training precision: which autocast dtype and memory layout a proxy run uses on a device.

"auto" picks the fastest setting that ranks candidates like fp32 on the hardware: bf16 autocast +
channels_last on CPUs with native bf16 (AVX512-BF16 or AMX-BF16; 1.5-2x faster there and ranking like fp32,
docs/FIDELITY.md), plain fp32 elsewhere, GPUs included. On a GPU, fp16 AMP failed the same check (τ 0.71
against fp32 at the same seed, below fp32's own seed-to-seed τ 0.79, on an H200) and gained no speed at the
proxy's batch 8, whose steps are bound by the host (bench/results/gpu/); `--precision fp16` still runs it.
Without native bf16 instructions, bf16 is emulated and slower than fp32, so asking for it is refused rather
than silently slow.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from nas.errors import NasError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: /proc/cpuinfo flags meaning the CPU computes bf16 dot products natively
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class Precision:
    """A resolved precision: name ("fp32" | "bf16" | "fp16"), autocast dtype (None: no autocast), whether
    the model and its inputs use the channels_last layout, and whether losses need a GradScaler (fp16)."""

    name: str
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @property
    def grad_scaler(self) -> bool:
        return self.autocast_dtype == torch.float16

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The autocast context for forward passes on device (a no-op for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)


FP32 = Precision("fp32", None, False)


def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16).

    Asks torch's own CPU-feature probes (cpuinfo-based, any OS) and falls back to /proc/cpuinfo flags.
    """
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    for probe in probes:
        try:
            if probe is not None and probe():
                return True
        except Exception:  # noqa: BLE001 - a private probe may change or fail; the flags still answer
            pass
    return any(flag in _cpuinfo_flags() for flag in BF16_FLAGS)


def resolve_precision(precision: str, device: str | torch.device) -> Precision:
    """"auto" | "fp32" | "bf16" | "fp16" on a device -> the Precision to train with; NasError when the
    device cannot run it (fp16 on CPU, bf16 on a CPU without native bf16 or a GPU without bf16)."""
    dev = torch.device(device)
    if precision not in PRECISIONS:
        raise NasError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return FP32
    if dev.type == "cuda":
        if precision == "auto":  # fp16 did not rank like fp32 on a GPU, nor train the proxy faster (see above)
            return FP32
        if precision == "fp16":
            return Precision("fp16", torch.float16, True)
        if not torch.cuda.is_bf16_supported():
            raise NasError("precision bf16: this GPU has no bf16 support; use --precision fp16, or fp32 (auto)")
        return Precision("bf16", torch.bfloat16, True)
    if dev.type != "cpu":
        raise NasError(f"precision {precision!r} on device {dev}: only fp32 is supported there; use --precision fp32")
    if precision == "fp16":
        raise NasError("precision fp16 is for CUDA GPUs; on a CPU use --precision bf16 (needs AVX512-BF16 or "
                       "AMX), auto or fp32")
    if cpu_has_native_bf16():
        return Precision("bf16", torch.bfloat16, True)
    if precision == "auto":
        return FP32
    raise NasError("precision bf16: this CPU has no native bf16 instructions (avx512_bf16 or amx_bf16), so bf16 "
                   "would be slower than fp32; use --precision fp32 or auto")
