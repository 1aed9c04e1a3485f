"""Pretrained weights: reading YOLOv5 and nas checkpoints safely (allow-list unpickler), transferring a base
checkpoint's tensors into an edited model layer by role, writing YOLOv5 v7.0 checkpoints."""

from nas.weights.checkpoint import (
    FORMATS,
    Checkpoint,
    InertModule,
    checkpoint_bytes,
    read_checkpoint,
    write_checkpoint,
)
from nas.weights.transfer import (
    Alignment,
    RuleResult,
    TransferReport,
    align_layers,
    alignment,
    alignment_from_map,
    transfer,
    yolov5_rule,
)

__all__ = ["FORMATS", "Alignment", "Checkpoint", "InertModule", "RuleResult", "TransferReport", "align_layers",
           "alignment", "alignment_from_map", "checkpoint_bytes", "read_checkpoint", "transfer", "write_checkpoint",
           "yolov5_rule"]
