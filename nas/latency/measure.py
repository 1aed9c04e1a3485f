"""Measured latency of a model: batch 1 at a fixed imgsz, on torch eager or onnxruntime (CPU), at a stated
thread count.

Method (docs/CONTRACTS.md "Latency"): each model is built with random weights, in eval mode, fp32, and run
`warmup` times; then `repeats` timed rounds follow, and where several models are compared each round runs
every model once in turn (interleaved), so that drift in the machine's speed (another process, turbo, heat)
hits all of them alike. The statistic is the minimum over the repeats: interference only ever adds time, so
the minimum is the most repeatable figure on a shared machine. The spread, (median - minimum) / minimum, says
how much interference there was. When any model's spread exceeds `threshold` (10%) the whole attempt is
repeated, at most `retries` times, and the attempt with the smallest worst spread is kept; a result whose
spread is still above the threshold is flagged `noisy`, and every caller says so.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.model import DetectionModel, build_model
from nas.model.parse import layer_inputs

RUNTIMES = ("torch", "onnxruntime")
WARMUP = 2  # untimed runs per model before the timed rounds (allocator, caches, oneDNN primitives)
REPEATS = 5  # timed rounds
RETRIES = 2  # further attempts when an attempt is too noisy
THRESHOLD = 0.10  # spread above which a result is noisy
ONNX_MISSING = "--latency-on onnxruntime needs onnx and onnxruntime: pip install 'nas[onnx]'"


@dataclass(frozen=True)
class Latency:
    """One measured latency: the minimum over `repeats` timed runs, in milliseconds, and how it was taken."""

    ms: float
    spread: float  # (median - min) / min over the repeats of the kept attempt
    repeats: int
    runtime: str  # "torch" | "onnxruntime"
    threads: int
    device: str  # "cpu", "cuda:0", ...; onnxruntime runs on the CPU
    noisy: bool  # spread above the threshold after every retry: the figure is not to be trusted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Latency:
        return cls(float(d["ms"]), float(d["spread"]), int(d["repeats"]), str(d["runtime"]), int(d["threads"]),
                   str(d["device"]), bool(d["noisy"]))

    def describe(self) -> str:
        """'68.2 ms (torch, 1 thread, cpu; min of 5, spread 2.1%)' plus a NOISY warning when flagged."""
        text = (f"{self.ms:.1f} ms ({self.runtime}, {self.threads} thread{'s' if self.threads != 1 else ''}, "
                f"{self.device}; min of {self.repeats}, spread {self.spread:.1%})")
        return text + (" NOISY: the machine was too busy to measure" if self.noisy else "")


def check_runtime(runtime: str, threads: int) -> None:
    """NasError (one line) for an unknown runtime, a thread count below 1 or onnxruntime not installed."""
    import importlib.util

    if runtime not in RUNTIMES:
        raise NasError(f"--latency-on {runtime!r} is not one of: {', '.join(RUNTIMES)}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise NasError(f"--latency-threads must be an integer of at least 1, got {threads!r}")
    if runtime == "onnxruntime" and any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime")):
        raise NasError(ONNX_MISSING)


@cache
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's processor string."""
    import platform

    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(runtime: str, device: str) -> str:
    """What the latency was measured on, for keys and reports: 'cpu (AMD EPYC)', 'cuda:0 (NVIDIA H100 ...)'."""
    import torch

    if runtime == "onnxruntime" or not str(device).startswith("cuda"):
        return f"cpu ({cpu_model()})"
    index = torch.device(device).index or 0
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def versions(runtime: str) -> dict[str, str | None]:
    """torch's version, and onnxruntime's when it is the runtime."""
    import torch

    ort = None
    if runtime == "onnxruntime":
        import onnxruntime

        ort = onnxruntime.__version__
    return {"torch": torch.__version__, "onnxruntime": ort}


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch.set_num_threads(threads) for the block, the previous count restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _as_model(model: Any, nc: int | None = None) -> Any:
    """A CPU fp32 eval copy of a DetectionModel, or one built from a model YAML dict / path / name."""
    if isinstance(model, DetectionModel):
        if any(t.is_meta for t in model.parameters()):
            raise NasError("latency needs a model with weights; this one was built on the meta device")
        return copy.deepcopy(model).to("cpu").float().eval()
    return build_model(model, nc=nc).float().eval()


def _torch_runner(model: Any, imgsz: tuple[int, int], device: str) -> Callable[[], None]:
    import torch

    net = model.to(device).eval()
    x = torch.rand(1, model.yaml.get("ch", 3), imgsz[0], imgsz[1], device=device)
    cuda = str(device).startswith("cuda")

    def run() -> None:
        with torch.inference_mode():
            net(x)
        if cuda:
            torch.cuda.synchronize(device)

    return run


def _onnx_runner(model: Any, imgsz: tuple[int, int], threads: int, folder: Path, n: int) -> Callable[[], None]:
    import numpy as np

    from nas.onnx_export import export_onnx, ort_session

    path = folder / f"model{n}.onnx"
    export_onnx(model, imgsz, path)  # checked against torch: a model that runs differently is not timed
    sess = ort_session(path, threads)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 3, imgsz[0], imgsz[1]), dtype=np.float32)

    def run() -> None:
        sess.run(None, {name: x})

    return run


def _spread(samples: Sequence[float]) -> float:
    low = min(samples)
    return (statistics.median(samples) - low) / low if low > 0 else 0.0


def measure_many(models: Sequence[Any], imgsz: int | tuple[int, int], *, runtime: str = "torch", threads: int = 1,
                 device: str = "cpu", nc: int | None = None, warmup: int = WARMUP, repeats: int = REPEATS,
                 retries: int = RETRIES, threshold: float = THRESHOLD,
                 clock: Callable[[], float] = time.perf_counter) -> list[Latency]:
    """Latency of each model (DetectionModel, model YAML dict, path or name), measured interleaved: each timed
    round runs every model once. Retries the whole attempt while any spread exceeds `threshold`."""
    check_runtime(runtime, threads)
    if repeats < 1 or warmup < 0 or retries < 0:
        raise NasError(f"latency needs repeats >= 1, warmup >= 0 and retries >= 0, got {repeats}, {warmup}, "
                       f"{retries}")
    h, w = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    where = "cpu" if runtime == "onnxruntime" else str(device)
    built = [_as_model(m, nc) for m in models]
    with tempfile.TemporaryDirectory(prefix="nas-latency-") as tmp, torch_threads(threads):
        if runtime == "torch":
            runners = [_torch_runner(m, (h, w), where) for m in built]
        else:
            runners = [_onnx_runner(m, (h, w), threads, Path(tmp), i) for i, m in enumerate(built)]
        best: list[list[float]] | None = None
        for _attempt in range(retries + 1):
            for run in runners:
                for _ in range(warmup):
                    run()
            samples: list[list[float]] = [[] for _ in runners]
            for _ in range(repeats):
                for k, run in enumerate(runners):
                    t0 = clock()
                    run()
                    samples[k].append((clock() - t0) * 1e3)
            if best is None or max(map(_spread, samples)) < max(map(_spread, best)):
                best = samples
            if max(map(_spread, best)) <= threshold:
                break
    assert best is not None
    return [Latency(min(s), _spread(s), repeats, runtime, threads, where, _spread(s) > threshold) for s in best]


def measure(model: Any, imgsz: int | tuple[int, int], *, runtime: str = "torch", threads: int = 1,
            device: str = "cpu", nc: int | None = None, **kwargs: Any) -> Latency:
    """Latency of one model at batch 1, imgsz (see the module docstring for the method)."""
    return measure_many([model], imgsz, runtime=runtime, threads=threads, device=device, nc=nc, **kwargs)[0]


def layer_latency(model: Any, imgsz: int | tuple[int, int], *, threads: int = 1, device: str = "cpu",
                  nc: int | None = None, warmup: int = WARMUP, repeats: int = REPEATS,
                  clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Milliseconds each layer of the model takes in torch eager at batch 1, like YOLOv5's `profile=True` column:
    every layer timed inside one forward pass, `repeats` passes after `warmup`, and the layers of the fastest pass
    kept, so that they add up to one real pass (close to the whole model's latency, plus the timer's cost)."""
    import torch

    check_runtime("torch", threads)
    h, w = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    net = _as_model(model, nc).to(device).eval()
    x0 = torch.rand(1, net.yaml.get("ch", 3), h, w, device=device)
    cuda = str(device).startswith("cuda")
    best: list[float] = []
    with torch_threads(threads), torch.inference_mode():
        for rnd in range(warmup + repeats):
            x, y, times = x0, [], []
            for m in net.model:
                x = layer_inputs(m.f, x, y)
                t0 = clock()
                x = m(x)
                if cuda:
                    torch.cuda.synchronize(device)
                times.append((clock() - t0) * 1e3)
                y.append(x if m.i in net.save else None)
            if rnd >= warmup and (not best or sum(times) < sum(best)):
                best = times
    return best


__all__ = ["ONNX_MISSING", "REPEATS", "RUNTIMES", "THRESHOLD", "WARMUP", "Latency", "check_runtime", "cpu_model",
           "device_name", "layer_latency", "measure", "measure_many", "torch_threads", "versions"]
