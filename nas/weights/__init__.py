"""Pretrained weights: reading YOLOv5 and nas checkpoints safely (nas.weights.unpickler, .checkpoint), writing
YOLOv5 v7.0 checkpoints (.writer), placing a base checkpoint's layers in an edited model by role (.align) and
copying their tensors (.transfer), YOLOv5's own name-and-shape rule for comparison (.rule)."""

from nas.weights.align import Alignment, align_layers, alignment, alignment_from_map
from nas.weights.checkpoint import FORMATS, Checkpoint, read_checkpoint
from nas.weights.rule import RuleResult, yolov5_rule
from nas.weights.transfer import TransferReport, transfer
from nas.weights.unpickler import InertModule
from nas.weights.writer import checkpoint_bytes, write_checkpoint

__all__ = ["FORMATS", "Alignment", "Checkpoint", "InertModule", "RuleResult", "TransferReport", "align_layers",
           "alignment", "alignment_from_map", "checkpoint_bytes", "read_checkpoint", "transfer", "write_checkpoint",
           "yolov5_rule"]
