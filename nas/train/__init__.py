"""Proxy training: YOLOv5 loss, NMS, COCO metrics, precision and the short seeded run that scores a model.

hyp.py (hyperparameters, optimiser, schedule), trainer.py (the run), val.py (scoring on the val split), loss.py,
boxes.py (NMS), metrics.py (COCO mAP, fitness), precision.py, memory.py (will it fit?). The proxy's data is
resolved by nas.data.resolve (resolve_data is handed on here for the trainer's callers)."""

from nas.train.boxes import box_iou, nms, non_max_suppression, xywh2xyxy, xyxy2xywh
from nas.train.hyp import Hyp
from nas.train.loss import DetectionLoss, build_targets
from nas.train.metrics import coco_map, fitness
from nas.train.precision import PRECISIONS, Precision, resolve_precision
from nas.train.trainer import ProxyResult, StopTraining, resolve_data, train_and_evaluate
from nas.train.val import evaluate

__all__ = [
    "DetectionLoss",
    "Hyp",
    "PRECISIONS",
    "Precision",
    "ProxyResult",
    "StopTraining",
    "box_iou",
    "build_targets",
    "coco_map",
    "evaluate",
    "fitness",
    "nms",
    "non_max_suppression",
    "resolve_data",
    "resolve_precision",
    "train_and_evaluate",
    "xywh2xyxy",
    "xyxy2xywh",
]
