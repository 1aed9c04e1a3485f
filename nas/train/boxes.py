"""Box arithmetic and non-maximum suppression in plain torch (no torchvision), YOLOv5 v7.0 semantics."""

from __future__ import annotations

import math

import torch

MAX_WH = 7680  # class offset for batched NMS: larger than any box coordinate, so classes never overlap
MAX_NMS = 30000  # at most this many candidates (best scores) per image enter NMS


def xywh2xyxy(x: torch.Tensor) -> torch.Tensor:
    """Centre-size boxes (..., 4) -> corner boxes (..., 4)."""
    xy, wh = x[..., :2], x[..., 2:4] / 2
    return torch.cat((xy - wh, xy + wh), -1)


def xyxy2xywh(x: torch.Tensor) -> torch.Tensor:
    """Corner boxes (..., 4) -> centre-size boxes (..., 4)."""
    return torch.cat(((x[..., :2] + x[..., 2:4]) / 2, x[..., 2:4] - x[..., :2]), -1)


def box_area(b: torch.Tensor) -> torch.Tensor:
    """Area of corner boxes (..., 4)."""
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Pairwise IoU of corner boxes a (n, 4) and b (m, 4) -> (n, m)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    return inter / (box_area(a)[:, None] + box_area(b)[None] - inter + eps)


def ciou(p: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of matching centre-size boxes p (n, 4) and t (n, 4) -> (n,).

    IoU minus the normalised centre distance and an aspect-ratio consistency term (Zheng et al. 2020),
    with the trade-off weight alpha held constant for the gradient, as YOLOv5's box loss uses it.
    """
    pw, ph, tw, th = p[:, 2], p[:, 3], t[:, 2], t[:, 3]
    p1, p2 = p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2
    t1, t2 = t[:, :2] - t[:, 2:] / 2, t[:, :2] + t[:, 2:] / 2
    inter = (torch.minimum(p2, t2) - torch.maximum(p1, t1)).clamp(min=0).prod(1)
    union = pw * ph + tw * th - inter + eps
    iou = inter / union
    enclose = torch.maximum(p2, t2) - torch.minimum(p1, t1)
    diag2 = enclose.pow(2).sum(1) + eps
    centre2 = (t[:, :2] - p[:, :2]).pow(2).sum(1)
    v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (centre2 / diag2 + v * alpha)


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_thres: float, max_keep: int | None = None, chunk: int = 256
) -> torch.Tensor:
    """Greedy NMS: indices of kept boxes, best score first.

    The definition: visit boxes by falling score, keep a box unless a kept box overlaps it with IoU above
    iou_thres. Done a chunk of boxes at a time for speed: a chunk first drops the boxes that earlier kept
    boxes suppress, then settles suppression inside itself by iterating keep_j = not any(keep_i and
    overlap_ij, i < j) to its fixed point, which is the greedy answer. Stopping after max_keep kept boxes
    gives the first max_keep of a full run. NaN IoUs (degenerate boxes) never suppress.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    limit = b.shape[0] if max_keep is None else max_keep
    kept: list[torch.Tensor] = []
    kept_boxes = b[:0]
    n_kept = 0
    for s in range(0, b.shape[0], chunk):
        cb = b[s : s + chunk]
        alive = torch.ones(cb.shape[0], dtype=torch.bool, device=b.device)
        if n_kept:
            alive = ~(box_iou(kept_boxes, cb, eps=0.0) > iou_thres).any(0)
        over = (box_iou(cb, cb, eps=0.0) > iou_thres).triu(1) & alive[:, None]
        keep = alive
        while True:
            new = alive & ~(over & keep[:, None]).any(0)
            if torch.equal(new, keep):
                break
            keep = new
        idx = keep.nonzero().squeeze(1)[: limit - n_kept]
        if idx.numel():
            kept.append(idx + s)
            kept_boxes = torch.cat((kept_boxes, cb[idx]))
            n_kept += idx.numel()
        if n_kept >= limit:
            break
    if not kept:
        return order[:0]
    return order[torch.cat(kept)]


def non_max_suppression(
    prediction: torch.Tensor,
    conf_thres: float = 0.001,
    iou_thres: float = 0.6,
    max_det: int = 300,
    multi_label: bool = False,
    agnostic: bool = False,
) -> list[torch.Tensor]:
    """Detections from YOLOv5 eval output (b, N, 5 + nc): per image (n, 6) [x1, y1, x2, y2, conf, cls].

    conf = objectness x class probability; candidates need objectness and conf above conf_thres.
    multi_label keeps every class above the threshold for a box (only when nc > 1). Boxes of different
    classes are separated by a class offset so one NMS pass never suppresses across classes.
    """
    if not 0 <= conf_thres <= 1 or not 0 <= iou_thres <= 1:
        raise ValueError(f"conf_thres {conf_thres} and iou_thres {iou_thres} must lie in [0, 1]")
    nc = prediction.shape[2] - 5
    multi_label = multi_label and nc > 1
    out = []
    for x in prediction:
        x = x[x[:, 4] > conf_thres]
        if not x.shape[0]:
            out.append(torch.zeros((0, 6), device=prediction.device))
            continue
        cls_conf = x[:, 5:] * x[:, 4:5]
        box = xywh2xyxy(x[:, :4])
        if multi_label:
            i, j = (cls_conf > conf_thres).nonzero(as_tuple=True)
            det = torch.cat((box[i], cls_conf[i, j, None], j[:, None].to(box.dtype)), 1)
        else:
            conf, j = cls_conf.max(1, keepdim=True)
            det = torch.cat((box, conf, j.to(box.dtype)), 1)[conf.view(-1) > conf_thres]
        if not det.shape[0]:
            out.append(torch.zeros((0, 6), device=prediction.device))
            continue
        det = det[torch.sort(det[:, 4], descending=True, stable=True).indices[:MAX_NMS]]
        offset = det[:, 5:6] * (0 if agnostic else MAX_WH)
        keep = nms(det[:, :4] + offset, det[:, 4], iou_thres, max_keep=max_det)
        out.append(det[keep])
    return out


def scale_boxes(
    boxes: torch.Tensor, ratio: tuple[float, float], pad: tuple[float, float], shape0: tuple[int, int]
) -> torch.Tensor:
    """Corner boxes in letterboxed pixels -> original pixels: undo pad and ratio (x, y), clip to (h, w)."""
    out = boxes.clone()
    out[:, [0, 2]] = ((out[:, [0, 2]] - pad[0]) / ratio[0]).clamp(0, shape0[1])
    out[:, [1, 3]] = ((out[:, [1, 3]] - pad[1]) / ratio[1]).clamp(0, shape0[0])
    return out
