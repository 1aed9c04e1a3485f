"""YOLOv5 v7.0 train.py's name-and-shape rule (`intersect_dicts` with `--cfg`), reimplemented for comparison:
once a block is inserted, every later layer is dropped or, where name and shape happen to agree, loaded into a
layer with another role."""

from __future__ import annotations

from typing import NamedTuple

import torch

from nas.weights.align import is_parameter, layer_of


class RuleResult(NamedTuple):
    """What YOLOv5 train.py's name-and-shape rule keeps, and how much of it lands in the right layer."""

    kept: int  # tensors kept (train.py prints `Transferred kept/total items`)
    total: int  # tensors in the edited model's state dict
    share: float  # base parameters that land in the layer playing their role / the base's parameters
    misplaced: int  # kept tensors loaded into a layer of another role (BatchNorm step counters aside)


def yolov5_rule(base_state: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor],
                index_map: dict[int, int]) -> RuleResult:
    """YOLOv5 v7.0 train.py with --cfg: keep k when it is in both state dicts with the same shape and is not
    an anchor key; `index_map` (the true old -> new map) says which kept tensors landed in their own role."""
    kept = [k for k, v in base_state.items()
            if k in model_state and "anchor" not in k and v.shape == model_state[k].shape]
    right, misplaced = 0, 0
    for k in kept:
        where = layer_of(k)
        if where is not None and index_map.get(where[0]) == where[0]:
            right += base_state[k].numel() if is_parameter(k) else 0
        elif not k.endswith("num_batches_tracked"):  # a step counter, not a weight
            misplaced += 1
    total_params = sum(v.numel() for k, v in base_state.items() if is_parameter(k))
    return RuleResult(len(kept), len(model_state), right / total_params if total_params else 0.0, misplaced)


__all__ = ["RuleResult", "yolov5_rule"]
