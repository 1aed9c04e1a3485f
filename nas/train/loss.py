"""YOLOv5 v7.0 detection loss: anchor-ratio target assignment with neighbour cells, CIoU box loss,
IoU-targeted objectness BCE with per-level balance, and class BCE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas.train.boxes import ciou

BALANCE = {3: (4.0, 1.0, 0.4)}  # objectness weight per level, P3..P5
BALANCE_DEFAULT = (4.0, 1.0, 0.25, 0.06, 0.02)  # P3..P7 for other level counts
# cell offsets tried for each target: its own cell, then left, up, right, down neighbours (x, y)
NEIGHBOURS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))


@dataclass
class Targets:
    """Targets assigned to one detection level: one row per (target, anchor, cell) match."""

    image: torch.Tensor  # (n,) batch index
    anchor: torch.Tensor  # (n,) anchor index
    gj: torch.Tensor  # (n,) cell row
    gi: torch.Tensor  # (n,) cell column
    box: torch.Tensor  # (n, 4) target centre relative to the cell's corner, and size, in grid units
    anchor_wh: torch.Tensor  # (n, 2) the matched anchor in grid units
    cls: torch.Tensor  # (n,) class index


def detect_head(model: nn.Module) -> nn.Module:
    """The model's Detect layer (the last layer of a YOLOv5 DetectionModel)."""
    inner = getattr(model, "module", model)
    return inner.model[-1]


def build_targets(
    targets: torch.Tensor,
    anchors: torch.Tensor,
    grids: list[tuple[int, int]],
    anchor_t: float = 4.0,
    g: float = 0.5,
) -> list[Targets]:
    """Assign normalised targets (nt, 6) [image, cls, cx, cy, w, h] to anchors and cells on every level.

    anchors: (nl, na, 2) in grid units; grids: (ny, nx) per level. A target matches an anchor when
    neither side ratio (target/anchor or anchor/target) reaches anchor_t. Each match uses its own cell
    and the two neighbours on the sides its centre is nearer to (within g of the edge, not in the
    outermost cell), so the predicted offset range (-0.5, 1.5) can reach it.
    """
    device = targets.device
    nt = targets.shape[0]
    off = torch.tensor(NEIGHBOURS, device=device) * g
    out = []
    for i, (ny, nx) in enumerate(grids):
        scale = torch.tensor([nx, ny], device=device, dtype=targets.dtype)
        anc = anchors[i].to(targets.dtype)
        if nt:
            gxy_all = targets[:, 2:4] * scale  # (nt, 2)
            gwh_all = targets[:, 4:6] * scale
            r = gwh_all[None] / anc[:, None]  # (na, nt, 2)
            match = torch.maximum(r, 1 / r).amax(2) < anchor_t  # (na, nt)
            a_idx, t_idx = match.nonzero(as_tuple=True)  # anchor-major order
            gxy, gwh = gxy_all[t_idx], gwh_all[t_idx]
            inv = scale - gxy
            near_lo = (gxy % 1 < g) & (gxy > 1)  # nearer the left/top edge, a left/top neighbour exists
            near_hi = (inv % 1 < g) & (inv > 1)
            use = torch.stack(
                (torch.ones_like(near_lo[:, 0]), near_lo[:, 0], near_lo[:, 1], near_hi[:, 0], near_hi[:, 1])
            )  # (5, n): offset-major, like the reference ordering
            k_idx, m_idx = use.nonzero(as_tuple=True)
            a_idx, t_idx = a_idx[m_idx], t_idx[m_idx]
            gxy, gwh = gxy[m_idx], gwh[m_idx]
            gij = (gxy - off[k_idx]).long()
        else:
            a_idx = t_idx = torch.zeros(0, dtype=torch.long, device=device)
            gxy = gwh = torch.zeros((0, 2), device=device, dtype=targets.dtype)
            gij = torch.zeros((0, 2), dtype=torch.long, device=device)
        gi, gj = gij[:, 0].clamp(0, nx - 1), gij[:, 1].clamp(0, ny - 1)
        cell = torch.stack((gi, gj), 1)
        out.append(
            Targets(
                image=targets[t_idx, 0].long(),
                anchor=a_idx,
                gj=gj,
                gi=gi,
                box=torch.cat((gxy - cell, gwh), 1),
                anchor_wh=anc[a_idx],
                cls=targets[t_idx, 1].long(),
            )
        )
    return out


class DetectionLoss:
    """YOLOv5's ComputeLoss: call with train-mode outputs and targets -> (loss * batch, [box, obj, cls]).

    Gains follow hyp.scratch-low scaled as train.py does: box x 3/nl, cls x nc/80 x 3/nl,
    obj x (imgsz/640)^2 x 3/nl. Objectness targets are the detached CIoU clamped at 0 (gr = 1).
    """

    def __init__(
        self,
        model: nn.Module,
        imgsz: int,
        box: float = 0.05,
        cls: float = 0.5,
        obj: float = 1.0,
        anchor_t: float = 4.0,
    ) -> None:
        det = detect_head(model)
        self.nl, self.na, self.nc = int(det.nl), int(det.na), int(det.nc)
        self.det = det  # anchors (nl, na, 2) in grid units are read at call time, after any .to(device)
        self.balance = BALANCE.get(self.nl, BALANCE_DEFAULT)
        self.anchor_t = anchor_t
        self.box_gain = box * 3 / self.nl
        self.cls_gain = cls * self.nc / 80 * 3 / self.nl
        self.obj_gain = obj * (imgsz / 640) ** 2 * 3 / self.nl
        self.bce = nn.BCEWithLogitsLoss()

    def __call__(self, preds: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """preds: nl tensors (b, na, ny, nx, 5 + nc) of logits; targets (nt, 6) normalised, same device."""
        device = preds[0].device
        anchors = self.det.anchors.to(device)
        assigned = build_targets(targets, anchors, [tuple(p.shape[2:4]) for p in preds], self.anchor_t)
        lbox = torch.zeros((), device=device)
        lobj = torch.zeros((), device=device)
        lcls = torch.zeros((), device=device)
        for i, (p, t) in enumerate(zip(preds, assigned, strict=True)):
            tobj = torch.zeros(p.shape[:4], device=device)  # float32 IoU targets, also for bf16/fp16 preds
            n = t.image.shape[0]
            if n:
                ps = p[t.image, t.anchor, t.gj, t.gi].float()  # (n, 5 + nc)
                pxy = ps[:, :2].sigmoid() * 2 - 0.5
                pwh = (ps[:, 2:4].sigmoid() * 2) ** 2 * t.anchor_wh
                iou = ciou(torch.cat((pxy, pwh), 1), t.box)
                lbox = lbox + (1.0 - iou).mean()
                tobj[t.image, t.anchor, t.gj, t.gi] = iou.detach().clamp(0)
                if self.nc > 1:
                    tc = torch.zeros_like(ps[:, 5:])
                    tc[torch.arange(n, device=device), t.cls] = 1.0
                    lcls = lcls + self.bce(ps[:, 5:], tc)
            lobj = lobj + self.bce(p[..., 4].float(), tobj) * self.balance[i]
        lbox = lbox * self.box_gain
        lobj = lobj * self.obj_gain
        lcls = lcls * self.cls_gain
        bs = preds[0].shape[0]
        return (lbox + lobj + lcls) * bs, torch.stack((lbox, lobj, lcls)).detach()
