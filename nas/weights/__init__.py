"""Pretrained weights: transfer a base checkpoint's tensors into an edited model, layer by role (transfer)."""

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

__all__ = ["Alignment", "RuleResult", "TransferReport", "align_layers", "alignment", "alignment_from_map",
           "transfer", "yolov5_rule"]
