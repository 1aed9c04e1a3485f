"""Scoring a model on a letterboxed val split: the forward pass, NMS, boxes back in original pixels, COCO mAP."""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import torch
from torch import nn

from nas.data import ImageSet, batches, color_jitter
from nas.errors import NasError
from nas.train.boxes import non_max_suppression, scale_boxes
from nas.train.metrics import coco_map
from nas.train.precision import FP32, Precision


def evaluate(
    model: nn.Module,
    data: ImageSet,
    batch: int = 32,
    device: str | torch.device | None = None,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    multi_label: bool = False,
    precision: Precision = FP32,
) -> tuple[float, float]:
    """(mAP@0.5, mAP@0.5:0.95) of a model on a letterboxed split; boxes are mapped back to original pixels.

    precision sets the input layout and the forward's autocast; NMS and the metrics always run in float32.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for bt in batches(data, batch):
                idx = bt.indices
                x = to_input(bt.images, device, memory_format=precision.memory_format)
                with precision.autocast(device):
                    out = model(x)
                out = out[0] if isinstance(out, (list, tuple)) else out
                dets = non_max_suppression(out.float(), conf_thres, iou_thres, max_det, multi_label)
                for d, i in zip(dets, idx, strict=True):
                    d = d.cpu()
                    if len(d):
                        d[:, :4] = scale_boxes(d[:, :4], data.ratios[i], data.pads[i], data.shapes0[i])
                    preds.append(d.numpy())
    finally:
        model.train(was_training)
    labels = [data.boxes0(i) for i in range(len(data))]
    return coco_map(preds, labels, data.shapes0, data.nc)


def to_input(
    images: np.ndarray,
    device: torch.device,
    hsv: np.ndarray | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """uint8 (b, h, w, 3) -> float (b, 3, h, w) in [0, 1] in the given layout, colour-jittered when hsv is given.

    The layout is explicit because the permuted copy would otherwise be channels-last for some batches and
    NCHW for others, and the whole network follows its input's layout.
    """
    x = torch.from_numpy(images).to(device, non_blocking=True)
    if hsv is not None:
        return color_jitter(x, torch.from_numpy(hsv)).contiguous(memory_format=memory_format)
    return x.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=memory_format)


def eval_schedule(
    eval_epochs: Collection[int] | Callable[[int], bool] | None, epochs: int
) -> Callable[[int], bool]:
    """eval_epochs -> a predicate on 1-based epochs that is also true for the last epoch."""
    if eval_epochs is None:
        return lambda e: True
    if callable(eval_epochs):
        chosen = eval_epochs
        return lambda e: e == epochs or bool(chosen(e))
    wanted = set(eval_epochs)
    if not all(isinstance(e, int) for e in wanted):
        raise NasError(f"eval_epochs must be whole epoch numbers, got {sorted(map(str, wanted))}")
    return lambda e: e == epochs or e in wanted


__all__ = ["eval_schedule", "evaluate", "to_input"]
