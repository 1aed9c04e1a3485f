"""Proxy training: YOLOv5 loss, NMS, COCO metrics, precision and the short seeded run that scores a model."""

from nas.train.boxes import box_iou, nms, non_max_suppression, xywh2xyxy, xyxy2xywh
from nas.train.loss import DetectionLoss, build_targets
from nas.train.metrics import coco_map, fitness
from nas.train.precision import PRECISIONS, Precision, resolve_precision
from nas.train.trainer import Hyp, ProxyResult, StopTraining, evaluate, resolve_data, train_and_evaluate

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
