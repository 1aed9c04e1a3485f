"""Proxy training: a short, seeded YOLOv5-style training run that scores one architecture by COCO mAP.

The loop follows YOLOv5 v7.0 train.py: SGD (nesterov, three parameter groups), warm-up of learning rate,
momentum and gradient accumulation towards the nominal batch, linear or cosine decay to lrf, gradient
clipping at norm 10. It evaluates on the val split every epoch, or only at the epochs a caller's decisions
need (eval_epochs) and the last one. Precision: fp32, or bf16/fp16 autocast with channels_last (precision.py).
Not copied from YOLOv5: EMA weights (over a proxy's few hundred steps the EMA equals the raw weights),
AutoAnchor, rectangular val batches (val images are letterboxed square like training ones).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.data import ImageSet, batches, load_split
from nas.data.resolve import ProxyData, resolve_data
from nas.device import parse_device
from nas.errors import NasError
from nas.model import build_model, count
from nas.outcome import CandidateFailed, Outcome
from nas.train.hyp import Hyp, build_optimizer, lr_factor
from nas.train.loss import DetectionLoss, detect_head
from nas.train.memory import proxy_memory_problem
from nas.train.metrics import fitness
from nas.train.precision import Precision, resolve_precision
from nas.train.val import eval_schedule, evaluate, to_input


class StopTraining(Exception):  # noqa: N818 - the name says what raising it does
    """Raised by an epoch callback to end training early; the result has status "stopped"."""


class _CallerError(Exception):
    """Internal: an exception from the caller's batch_callback, re-raised as is (not the candidate's fault)."""


@dataclass
class ProxyResult:
    """Outcome of one proxy run. status: trained, stopped (by the callback) or failed (reason says why).

    Metrics are those of the best-fitness evaluated epoch (YOLOv5 reports its best checkpoint); a failed run
    scores 0 but keeps the history of the epochs it completed. precision is the resolved one (fp32, bf16, fp16).
    """

    fitness: float = 0.0
    mAP50: float = 0.0
    mAP50_95: float = 0.0
    history: list[dict] = field(default_factory=list)
    params: int = 0
    gflops: float | None = None
    wall_time: float = 0.0
    status: Outcome = Outcome.TRAINED
    reason: str = ""
    best_epoch: int = 0
    epochs: int = 0
    times: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    imgsz: int = 0
    device: str = "cpu"
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with YOLOv5's metric names (mAP50-95)."""
        d = asdict(self)
        d["mAP50-95"] = d.pop("mAP50_95")
        return d


def _count_cost(model: nn.Module, imgsz: int) -> float | None:
    try:
        return float(count(model, imgsz=(imgsz, imgsz)).gflops)
    except Exception:  # cost is informative here; a model that cannot be counted can still train
        return None


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


class _Deterministic:
    """Turn on deterministic algorithms for the run and restore the previous setting afterwards."""

    def __init__(self, on: bool, cuda: bool) -> None:
        self.on, self.cuda = on, cuda

    def __enter__(self) -> None:
        self.prev = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        self.prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        if self.on:
            if self.cuda:
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            torch.use_deterministic_algorithms(True, warn_only=True)

    def __exit__(self, *exc: object) -> None:
        torch.use_deterministic_algorithms(self.prev[0], warn_only=self.prev[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = self.prev_cudnn


def _device(device: str | torch.device) -> torch.device:
    return torch.device(parse_device(str(device)))


def _build(model: str | Path | dict | nn.Module, nc: int, names: list[str]) -> nn.Module:
    if isinstance(model, nn.Module):
        det_nc = int(detect_head(model).nc)
        if det_nc != nc:
            raise NasError(f"the model predicts {det_nc} classes but the data has {nc}; build it with nc={nc}")
        return model
    m = build_model(model, nc=nc)
    if hasattr(m, "names"):
        try:
            m.names = list(names)
        except Exception:  # names are cosmetic
            pass
    return m


def train_and_evaluate(
    model_cfg_or_module: str | Path | dict | nn.Module,
    data: ProxyData = None,
    epochs: int = 10,
    imgsz: int = 256,
    batch: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callback: Callable[[dict], bool | None] | None = None,
    *,
    hyp: Hyp | dict | None = None,
    cache_dir: str | Path | None = None,
    precision: str | Precision = "fp32",
    eval_epochs: Collection[int] | Callable[[int], bool] | None = None,
    deterministic: bool = True,
    batch_callback: Callable[[int, int, int], None] | None = None,
    too_big: str = "error",
    init: Callable[[nn.Module], Any] | None = None,
) -> ProxyResult:
    """Train a model (built-in name, YAML path, cfg dict, or module) briefly and score it on the val split.

    data: None for the built-in synthetic dataset at imgsz, a data YAML path/dict, a DataSpec or a
    SyntheticConfig. callback(epoch_dict) runs after every epoch; returning False or raising StopTraining
    ends the run with status "stopped". A non-finite loss or an exception from the candidate ends it with
    status "failed" and a reason. User errors (missing data, bad options, a model YAML the builder rejects)
    raise NasError. A module passed in is trained in place; a config is built after torch.manual_seed(seed).
    batch_callback(epoch, batch_index, batches_per_epoch) is for progress displays.
    precision: "auto" | "fp32" | "bf16" | "fp16" (see nas.train.precision) or a resolved Precision; the val
    split is always scored in float32. eval_epochs: the 1-based epochs to score on the val split (a
    collection, or a predicate on the epoch), the last epoch always; None scores every epoch. Records of
    the other epochs carry the training losses but no mAP50, mAP50-95 or fitness keys.
    Before any image is made or read, the run's memory is estimated (nas.train.memory); when it exceeds what
    is available, too_big="error" raises NasError and too_big="fail" returns a failed result saying so.
    init(model) runs once the model is built (seeded) and before it trains: e.g. a checkpoint's transfer
    (nas.weights.Initializer), which makes the run fine-tune.
    """
    t_start = time.perf_counter()
    hyp = Hyp.from_any(hyp)
    dev = _device(device)
    prec = precision if isinstance(precision, Precision) else resolve_precision(precision, dev)
    if epochs < 1 or batch < 1 or imgsz < 32:
        raise NasError(f"epochs ({epochs}) and batch ({batch}) must be >= 1 and imgsz ({imgsz}) >= 32")
    scored = eval_schedule(eval_epochs, epochs)
    result = ProxyResult(seed=seed, imgsz=imgsz, device=str(dev), precision=prec.name)

    t0 = time.perf_counter()
    too_much = proxy_memory_problem(model_cfg_or_module, data, imgsz, batch, cache_dir)
    if too_much and too_big == "fail":
        result.status, result.reason = Outcome.FAILED, too_much
        result.wall_time = time.perf_counter() - t_start
        return result
    if too_much:
        raise NasError(too_much)
    spec = resolve_data(data, imgsz, cache_dir)
    train_set = load_split(spec, "train", imgsz)
    val_set = load_split(spec, "val", imgsz)
    times = {"data": time.perf_counter() - t0, "train": 0.0, "eval": 0.0}
    result.times = times

    with _Deterministic(deterministic, dev.type == "cuda"):
        torch.manual_seed(seed)
        try:
            model = _build(model_cfg_or_module, spec.nc, spec.names)
        except (NasError, KeyboardInterrupt):
            raise
        except Exception as e:
            result.status, result.reason = Outcome.FAILED, f"model build: {_describe(e)}"
            result.wall_time = time.perf_counter() - t_start
            return result
        if init is not None:
            init(model)
        result.params = sum(p.numel() for p in model.parameters())
        gs = int(max(int(getattr(model, "stride", torch.tensor([32])).max()), 32))
        if imgsz % gs:
            lo, hi = max(imgsz // gs * gs, gs), (imgsz // gs + 1) * gs
            raise NasError(f"imgsz {imgsz} is not a multiple of the model's largest stride {gs}; use {lo} or {hi}")
        result.gflops = _count_cost(model, imgsz)
        _run(model, train_set, val_set, epochs, batch, seed, dev, hyp, prec, scored, callback, batch_callback,
             result)
    result.wall_time = time.perf_counter() - t_start
    return result


def _run(
    model: nn.Module,
    train_set: ImageSet,
    val_set: ImageSet,
    epochs: int,
    batch: int,
    seed: int,
    dev: torch.device,
    hyp: Hyp,
    prec: Precision,
    scored: Callable[[int], bool],
    callback: Callable[[dict], bool | None] | None,
    batch_callback: Callable[[int, int, int], None] | None,
    result: ProxyResult,
) -> None:
    """The epoch loop; fills result in place."""
    times = result.times
    eval_prec = replace(prec, autocast_dtype=None)  # scored in float32, in the training layout
    try:
        model.to(dev, memory_format=prec.memory_format).train()
        optimizer = build_optimizer(model, hyp, batch)
        compute_loss = DetectionLoss(model, train_set.size, hyp.box, hyp.cls, hyp.obj, hyp.anchor_t)
    except Exception as e:
        result.status, result.reason = Outcome.FAILED, f"setup: {_describe(e)}"
        return
    for g in optimizer.param_groups:
        g["initial_lr"] = hyp.lr0
    scaler = torch.amp.GradScaler(dev.type, enabled=prec.grad_scaler)
    lf = lr_factor(hyp, epochs)
    nb = math.ceil(len(train_set) / batch)
    nw = min(round(hyp.warmup_epochs * nb), (epochs * nb) // 3) if hyp.warmup_epochs > 0 else 0
    aug = hyp.augment()
    nbs_accumulate = max(round(hyp.nbs / batch), 1)
    accumulate = nbs_accumulate
    last_step = -1
    best = -1.0

    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        try:
            rng = np.random.default_rng([seed, epoch])
            sums = torch.zeros(3, device=dev)
            optimizer.zero_grad(set_to_none=True)
            n_seen = 0
            for i, bt in enumerate(batches(train_set, batch, rng, aug)):
                ni = i + nb * epoch
                if nw and ni <= nw:
                    accumulate = max(1, int(np.interp(ni, [0, nw], [1, nbs_accumulate]).round()))
                    for j, g in enumerate(optimizer.param_groups):
                        start = hyp.warmup_bias_lr if j == 0 else 0.0
                        g["lr"] = float(np.interp(ni, [0, nw], [start, g["initial_lr"] * lf(epoch)]))
                        g["momentum"] = float(np.interp(ni, [0, nw], [hyp.warmup_momentum, hyp.momentum]))
                else:
                    accumulate = nbs_accumulate
                    for g in optimizer.param_groups:
                        g["lr"] = g["initial_lr"] * lf(epoch)
                        g["momentum"] = hyp.momentum
                x = to_input(bt.images, dev, bt.hsv, prec.memory_format)
                t = torch.from_numpy(bt.targets).to(dev, non_blocking=True)
                with prec.autocast(dev):
                    preds = model(x)
                loss, items = compute_loss(preds, t)  # outside autocast: it reads the predictions as float32
                if not bool(torch.isfinite(loss)):
                    b, o, c = (float(v) for v in items)
                    raise CandidateFailed(
                        f"non-finite loss at epoch {epoch + 1}, batch {i + 1} (box {b:.4g}, obj {o:.4g}, cls {c:.4g})"
                    )
                scaler.scale(loss).backward()
                if ni - last_step >= accumulate:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), max_norm=hyp.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    last_step = ni
                sums += items
                n_seen += 1
                if batch_callback is not None:
                    try:
                        batch_callback(epoch + 1, i + 1, nb)
                    except Exception as e:
                        raise _CallerError() from e
            t_train = time.perf_counter()
            times["train"] += t_train - t_epoch
            means = (sums / max(n_seen, 1)).tolist()
            if not all(math.isfinite(v) for v in means):
                raise CandidateFailed(f"non-finite loss at epoch {epoch + 1}")
            rec: dict[str, Any] = {"epoch": epoch + 1, "box": means[0], "obj": means[1], "cls": means[2],
                                   "loss": sum(means)}
            if scored(epoch + 1):
                m50, m5095 = evaluate(model, val_set, batch * 2, dev, hyp.conf_thres, hyp.iou_thres, hyp.max_det,
                                      hyp.multi_label, eval_prec)
                rec.update({"mAP50": m50, "mAP50-95": m5095, "fitness": fitness(m50, m5095)})
            times["eval"] += time.perf_counter() - t_train
        except (KeyboardInterrupt, NasError):
            raise
        except _CallerError as e:
            raise e.__cause__ from None
        except CandidateFailed as e:
            _fail(result, str(e))
            return
        except Exception as e:
            _fail(result, f"epoch {epoch + 1}: {_describe(e)}")
            return
        rec["time"] = time.perf_counter() - t_epoch
        result.history.append(rec)
        result.epochs = epoch + 1
        if "fitness" in rec and rec["fitness"] > best:
            best = rec["fitness"]
            result.fitness, result.mAP50, result.mAP50_95 = rec["fitness"], rec["mAP50"], rec["mAP50-95"]
            result.best_epoch = epoch + 1
        if callback is not None:
            try:
                go_on = callback(dict(rec))
            except StopTraining as e:
                result.status, result.reason = (
                    Outcome.STOPPED,
                    str(e) or f"stopped by the callback after epoch {epoch + 1}",
                )
                return
            if go_on is False:
                result.status, result.reason = Outcome.STOPPED, f"stopped by the callback after epoch {epoch + 1}"
                return


def _fail(result: ProxyResult, reason: str) -> None:
    result.status, result.reason = Outcome.FAILED, reason
    result.fitness = result.mAP50 = result.mAP50_95 = 0.0
    result.best_epoch = 0
