"""ONNX export of a DetectionModel, checked: the file is validated by onnx's checker and run in onnxruntime (CPU,
one thread) on a seeded input, and its predictions are compared with the torch model's.

onnx and onnxruntime are optional (`pip install 'nas[onnx]'`); they are imported only when an export runs.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import NasError
from nas.files import check_writable, guarded_output
from nas.lazy import lazy
from nas.model import build_model

onnx = lazy("onnx")  # optional: require_onnx() says how to install them
onnxruntime = lazy("onnxruntime")

MISSING = "--onnx needs onnx and onnxruntime: pip install 'nas[onnx]'"
DYNAMO_MISSING = "--onnx with the dynamo exporter also needs onnxscript: pip install 'nas[onnx]'"
EXPORTERS = ("torchscript", "dynamo")


@dataclass
class OnnxReport:
    """What was written and how closely onnxruntime reproduces the torch model on the seeded input."""

    path: str
    opset: int  # the file's ai.onnx opset (the dynamo exporter writes 18 where it cannot convert down)
    exporter: str  # "torchscript" | "dynamo"
    max_abs_error: float
    max_rel_error: float  # max |ort - torch| / |torch| over elements with |torch| > 1e-3
    tolerance: str  # "atol=..., rtol=..." with numpy.allclose semantics: |ort - torch| <= atol + rtol * |torch|
    passed: bool
    onnxruntime: str  # onnxruntime version
    size_bytes: int
    output_shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PredOnly(nn.Module):
    """Eval-mode DetectionModel returning only `pred` (b, N, nc+5), the tensor an exported detector serves."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def require_onnx(dynamo: bool = False) -> None:
    """NasError naming the install command unless onnx and onnxruntime (and onnxscript for dynamo) are there."""
    if any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime")):
        raise NasError(MISSING)
    if dynamo and importlib.util.find_spec("onnxscript") is None:
        raise NasError(DYNAMO_MISSING)


def describe(model: nn.Module) -> str:
    """`<source> (BiFormer at layer 9, ...)`: the model and its attention blocks, for error messages."""
    name = getattr(model, "source", None) or "the model"
    found = [f"{info.block} at layer {info.i}" for info in getattr(model, "layers_info", []) or [] if info.block]
    return f"{name} ({', '.join(found)})" if found else f"{name} (no attention blocks)"


def first_line(e: BaseException) -> str:
    """`Type: first line of the message` (cut at 200 characters), for one-line errors."""
    text = str(e).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = line if len(line) <= 200 else line[:197] + "..."
    return f"{type(e).__name__}: {line}" if line else type(e).__name__


def seeded_input(imgsz: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Batch 1, 3 x h x w, uniform in [0, 1): the same image for every export with the same seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, int(imgsz[0]), int(imgsz[1]), generator=g)


def compare(got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> tuple[float, float, bool]:
    """(max abs error, max rel error over |want| > 1e-3, numpy.allclose(got, want, rtol, atol))."""
    if got.shape != want.shape:
        return float("inf"), float("inf"), False
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    if not np.isfinite(got).all():
        return float("inf"), float("inf"), False
    big = np.abs(want) > 1e-3
    rel = float((diff[big] / np.abs(want[big])).max()) if big.any() else 0.0
    ok = bool(np.all(diff <= atol + rtol * np.abs(want.astype(np.float64))))
    return float(diff.max()) if diff.size else 0.0, rel, ok


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings and log lines (torchvision ops skipped, opset conversion attempts): nas
    reports the outcome itself, in one line."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export(wrapper: nn.Module, x: torch.Tensor, tmp: Path, opset: int, dynamo: bool) -> None:
    kwargs: dict[str, Any] = dict(input_names=["images"], output_names=["output0"], opset_version=opset,
                                  dynamo=dynamo)
    if dynamo:  # weights inside the one file: an external .data file would be named after the temp path
        kwargs.update(external_data=False, optimize=True, verbose=False)
    else:
        kwargs.update(do_constant_folding=True)
    with _quiet():
        torch.onnx.export(wrapper, (x,), str(tmp), **kwargs)


def _fix(dynamo: bool, opset: int) -> str:
    """What to try next, in the CLI's options and export_onnx's arguments."""
    if dynamo and opset < 18:
        return ("use opset 18 or more with the dynamo exporter (it writes opset 18 and converts down), "
                "or the torchscript exporter (--onnx-exporter torchscript, dynamo=False)")
    other = "torchscript" if dynamo else "dynamo"
    return f"try the {other} exporter (--onnx-exporter {other}, dynamo={not dynamo}) or another opset (--onnx-opset)"


def ort_session(path: str | Path, threads: int = 1) -> Any:
    """An onnxruntime CPU InferenceSession with `threads` intra-op threads (and one inter-op thread)."""
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnxruntime(path: str | Path, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """The ONNX file's first output on `x`, onnxruntime CPU with `threads` intra-op threads."""
    sess = ort_session(path, threads)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def export_onnx(model: nn.Module, imgsz: tuple[int, int], path: str | Path, *, opset: int = 17,
                dynamo: bool = False, atol: float = 1e-4, rtol: float = 1e-3, seed: int = 0, strict: bool = True
                ) -> OnnxReport:
    """Export `model`'s eval-mode predictions to `path` (fp32, batch 1, fixed imgsz), check the file, run it in
    onnxruntime and compare with torch; NasError when a layer cannot be exported or the outputs differ beyond
    `numpy.allclose(ort, torch, rtol, atol)` (strict=False: the file is written and the report says passed=False).
    The caller's model is left untouched (a copy is exported)."""
    require_onnx(dynamo)
    exporter = "dynamo" if dynamo else "torchscript"
    what = describe(model)
    h, w = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else (int(v) for v in imgsz)
    stride = int(max(getattr(model, "stride", torch.tensor([1])).tolist()))
    if h <= 0 or w <= 0 or h % stride or w % stride:
        raise NasError(f"ONNX export of {what}: imgsz {h}x{w} must be positive multiples of the stride {stride}")
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        raise NasError(f"ONNX export of {what}: the model was built on the meta device (shapes only); build it on "
                       f"the CPU (nas.model.build_model(cfg)) to export its weights")
    net = copy.deepcopy(model).to("cpu").float().eval()
    wrapper = PredOnly(net).eval()
    x = seeded_input((h, w), seed)
    with torch.no_grad():
        want = wrapper(x).numpy()

    with guarded_output(path, "--onnx") as tmp:
        try:
            with torch.no_grad():
                _export(wrapper, x, tmp, opset, dynamo)
        except Exception as e:  # torch.onnx raises many types (SymbolicValueError, TorchExportError, ...)
            raise NasError(f"ONNX export of {what} failed in the {exporter} exporter (opset {opset}): "
                           f"{first_line(e)}; {_fix(dynamo, opset)}") from None
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
            written = next((o.version for o in onnx.load(str(tmp), load_external_data=False).opset_import
                            if o.domain in ("", "ai.onnx")), opset)
            got = run_onnxruntime(tmp, x.numpy())
        except Exception as e:
            raise NasError(f"ONNX export of {what} ({exporter}, opset {opset}) does not load in onnx/onnxruntime: "
                           f"{first_line(e)}; {_fix(dynamo, opset)}") from None
        max_abs, max_rel, ok = compare(got, want, atol, rtol)
        tolerance = f"atol={atol:g}, rtol={rtol:g}"
        if not ok and strict:
            raise NasError(f"ONNX export of {what} differs from torch by {max_abs:.3g} (tolerance {tolerance}; max "
                           f"relative error {max_rel:.3g}) at {path}; the file was not written; "
                           f"{_fix(dynamo, opset)}")
        size = os.path.getsize(tmp)
    return OnnxReport(path=str(path), opset=int(written), exporter=exporter, max_abs_error=max_abs,
                      max_rel_error=max_rel, tolerance=tolerance, passed=ok, onnxruntime=onnxruntime.__version__,
                      size_bytes=size, output_shape=tuple(int(s) for s in got.shape))


# ----------------------------------------------------------------------- the CLI's --onnx (export-best, profile)


def default_opset(exporter: str) -> int:
    """17 for the torchscript exporter; 18 for dynamo, which writes 18 and cannot always convert down."""
    return 18 if exporter == "dynamo" else 17


def check_target(path: str | Path, exporter: str = "torchscript", *, other: Path | None = None,
                 other_option: str = "--out") -> Path:
    """Before any work: the --onnx path can be written (a missing path or a regular file, in a folder nas can
    write to), it is not the command's other output, and the packages the exporter needs are installed."""
    target = check_writable(path, "--onnx")
    if other is not None and os.path.realpath(target) == os.path.realpath(other):
        raise NasError(f"--onnx and {other_option} both name {target}; give each its own file")
    require_onnx(exporter == "dynamo")
    return target


def build_seeded(model: str | Path | dict, nc: int | None = None, seed: int = 0) -> nn.Module:
    """The model built on the CPU with weights initialised after torch.manual_seed(seed); the global RNG is left as
    it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(model, nc=nc, device="cpu")


def result_line(r: OnnxReport, imgsz: tuple[int, int]) -> str:
    """`wrote best.onnx (1.9 MB): ...`: the one line both commands print after a checked export."""
    h, w = imgsz
    return (f"wrote {r.path} ({r.size_bytes / 1e6:.1f} MB): ONNX opset {r.opset}, {r.exporter} exporter, batch 1 "
            f"at {h}x{w}, seeded random weights; onnxruntime {r.onnxruntime} matches torch to "
            f"{r.max_abs_error:.2g} max abs error (tolerance {r.tolerance})")
