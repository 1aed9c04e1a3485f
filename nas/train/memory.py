"""Will the proxy fit in memory? An estimate made before anything is allocated, checked against what the
machine (or its cgroup) has available, so a size that cannot fit is refused with one error line instead of
being killed by the kernel minutes later.

The estimate adds the pixels a split keeps in memory (both splits, when under the dataset's cache budget),
the images one training batch assembles (mosaic canvases included), and the model's activations: every
tensor the forward pass creates at the proxy's imgsz, counted on the meta device (nothing allocated), which
is what autograd keeps for the backward pass, times the batch, times the backward pass's share on top
(gradients held beside the saved tensors; measured). bench/bench_memory.py compares it with the
peak memory of real proxy runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nas.data.dataset import CACHE_BUDGET
from nas.data.resolve import ProxyData, data_sizes
from nas.errors import NasError
from nas.model import build_model, load_cfg
from nas.space.render import model_hash

GIB = 1 << 30
MOSAIC = 4 * 3  # a training sample is cut from a 2x2 mosaic canvas of uint8 RGB: 4 * imgsz^2 * 3 bytes
BACKWARD = 1.4  # the backward pass's gradients beside the saved activations: peak / forward, bench_memory.py
CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes the proxy needs at one size, by part."""

    images: int  # letterboxed pixels the splits keep in memory
    batch: int  # one training batch: mosaic canvases, uint8 and float32 input
    activations: int  # the forward pass's tensors at that batch (kept for the backward pass)
    model: int  # weights, gradients and SGD momentum

    @property
    def total(self) -> int:
        return self.images + self.batch + self.activations + self.model

    def describe(self) -> str:
        return (f"about {gib(self.total)} (cached images {gib(self.images)}, one batch {gib(self.batch)}, "
                f"activations {gib(self.activations)}, model {gib(self.model)})")


def gib(n: float) -> str:
    """Bytes as GiB with two decimals and thousands separators."""
    return f"{n / GIB:,.2f} GiB"


class _TensorBytes(TorchDispatchMode):
    """Sums the bytes of every new tensor an op returns (views and in-place results share storage)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view and not func._schema.is_mutable:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.total += t.numel() * t.element_size()
        return out


_ACTIVATIONS: dict[tuple, tuple[int, int]] = {}


def forward_bytes(cfg: dict, nc: int | None, imgsz: int | tuple[int, int]) -> tuple[int, int]:
    """(bytes of every tensor one image's training forward creates, parameter count), on the meta device.
    imgsz: square side or (h, w)."""
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    key = (model_hash(cfg), nc, h, w)
    if key not in _ACTIVATIONS:
        model = build_model(cfg, nc=nc, device="meta").train()
        counter = _TensorBytes()
        with torch.no_grad(), counter:
            model(torch.empty(1, 3, h, w, device="meta"))
        _ACTIVATIONS[key] = (counter.total, sum(p.numel() for p in model.parameters()))
    return _ACTIVATIONS[key]


def estimate_proxy_memory(
    cfg: dict, nc: int | None, imgsz: int, batch: int, n_train: int, n_val: int
) -> MemoryEstimate:
    """What a proxy run of this model at imgsz and batch needs, before anything is allocated."""
    pixels = imgsz * imgsz * 3
    images = sum(n * pixels for n in (n_train, n_val) if n * pixels <= CACHE_BUDGET)
    per_image, params = forward_bytes(cfg, nc, imgsz)
    return MemoryEstimate(
        images=images,
        batch=batch * (MOSAIC * imgsz * imgsz + pixels * (1 + 4)),
        activations=round(BACKWARD * batch * per_image),
        model=4 * 3 * params,
    )


def available_memory() -> tuple[int, str]:
    """(bytes this process may still allocate, where that limit comes from): the least of the kernel's
    MemAvailable and the free part of a cgroup's memory limit (v2 memory.max, v1 limit_in_bytes)."""
    found: list[tuple[int, str]] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "available memory (/proc/meminfo)"))
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (CGROUP / limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:
                used = int((CGROUP / usage_file).read_text().strip())
                found.append((max(int(limit) - used, 0), f"the cgroup's memory limit ({CGROUP / limit_file})"))
        except (OSError, ValueError):
            continue
    if not found:  # not Linux: take total physical memory, never refuse for want of a reading
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory"
        except (ValueError, OSError, AttributeError):
            return 1 << 62, "unknown"
    return min(found)


def memory_problem(
    cfg: dict, nc: int | None, imgsz: int, batch: int, n_train: int, n_val: int, *, what: str = "the model"
) -> str | None:
    """None when the estimate fits in the memory available; else the reason, naming the size, the estimate
    and the limit. what: the model being checked, for the message."""
    est = estimate_proxy_memory(cfg, nc, imgsz, batch, n_train, n_val)
    free, source = available_memory()
    if est.total <= free:
        return None
    return (f"--imgsz {imgsz} --batch {batch} does not fit in memory: training {what} needs {est.describe()}, "
            f"but {gib(free)} is {source}; use a smaller --imgsz or --batch")


def proxy_memory_problem(model: str | Path | dict | nn.Module, data: ProxyData, imgsz: int, batch: int,
                         cache_dir: str | Path | None = None) -> str | None:
    """memory_problem for a proxy run of a model (name, YAML, dict or module) on its data, or None where there is
    nothing to count; the data's images are counted without making or decoding one."""
    if isinstance(model, nn.Module):
        cfg = getattr(model, "yaml", None)
        if not isinstance(cfg, dict):
            return None  # a bare module: nothing to count on the meta device
    else:
        try:
            cfg = load_cfg(model)
        except NasError:
            return None  # the build reports a bad model YAML, with its file and layer
    nc, n_train, n_val = data_sizes(data, imgsz, cache_dir)
    try:
        return memory_problem(cfg, nc, imgsz, batch, n_train, n_val, what=_model_name(model))
    except Exception:  # noqa: BLE001 - a model that does not build or run is reported by the run, with its reason
        return None


def _model_name(model: str | Path | dict | nn.Module) -> str:
    return str(model) if isinstance(model, (str, Path)) else "the model"



def check_export_memory(cfg: dict, nc: int | None, imgsz: tuple[int, int], *, what: str, option: str) -> None:
    """NasError when one image through the model cannot fit twice (torch's forward while it traces, then
    onnxruntime's run of the exported file), with the weights; option: the flag that asked for it."""
    per_image, params = forward_bytes(cfg, nc, imgsz)
    need = 2 * per_image + 3 * 4 * params
    free, source = available_memory()
    if need > free:
        raise NasError(f"{option}: {what} at {imgsz[0]}x{imgsz[1]} does not fit in memory: one image through torch "
                       f"and onnxruntime needs about {gib(need)}, but {gib(free)} is {source}; use a smaller "
                       f"--imgsz")


def check_proxy_memory(
    cfg: dict, nc: int | None, imgsz: int, batch: int, n_train: int, n_val: int, *, what: str = "the model"
) -> None:
    """NasError with memory_problem's reason when the proxy cannot fit."""
    problem = memory_problem(cfg, nc, imgsz, batch, n_train, n_val, what=what)
    if problem:
        raise NasError(problem)
