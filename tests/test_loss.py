"""YOLOv5 loss: target assignment (anchors, cells, neighbours, anchor_t) and hand-computed loss values."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from nas.train.boxes import ciou
from nas.train.loss import DetectionLoss, build_targets


def fake_model(anchors: list, nc: int) -> SimpleNamespace:
    """Just enough of a DetectionModel for the loss: model[-1] with nl, na, nc, anchors (grid units)."""
    a = torch.tensor(anchors, dtype=torch.float32)
    det = SimpleNamespace(nl=a.shape[0], na=a.shape[1], nc=nc, anchors=a)
    return SimpleNamespace(model=[det])


GRIDS = [(8, 8), (4, 4), (2, 2)]  # a 64 x 64 input at strides 8, 16, 32


def cells(t) -> set[tuple[int, int, int, int]]:
    return {(int(b), int(a), int(j), int(i)) for b, a, j, i in zip(t.image, t.anchor, t.gj, t.gi, strict=True)}


def test_own_cell_plus_the_two_nearer_neighbours():
    anchors = torch.tensor([[[1.0, 1.0], [10.0, 10.0], [20.0, 20.0]]] * 3)
    # grid x = 3.2 (left part of cell 3 -> left neighbour), grid y = 2.7 (lower part of cell 2 -> cell 3 below)
    tg = torch.tensor([[0, 1, 3.2 / 8, 2.7 / 8, 1.5 / 8, 1.0 / 8]])
    out = build_targets(tg, anchors, GRIDS)
    assert cells(out[0]) == {(0, 0, 2, 3), (0, 0, 2, 2), (0, 0, 3, 3)}
    # offsets of the centre from each cell's corner: the neighbours see it at -0.3 .. 1.2
    got = {(int(j), int(i)): b[:2].tolist() for j, i, b in zip(out[0].gj, out[0].gi, out[0].box, strict=True)}
    assert got[(2, 3)] == pytest.approx([0.2, 0.7], abs=1e-5)
    assert got[(2, 2)] == pytest.approx([1.2, 0.7], abs=1e-5)
    assert got[(3, 3)] == pytest.approx([0.2, -0.3], abs=1e-5)
    assert out[0].box[:, 2:].flatten().tolist() == pytest.approx([1.5, 1.0] * 3)
    assert out[0].cls.tolist() == [1, 1, 1]


def test_no_neighbour_in_the_outermost_cell_or_at_the_centre():
    anchors = torch.tensor([[[1.0, 1.0], [10.0, 10.0], [20.0, 20.0]]] * 3)
    # x = 0.3: left half of cell 0, but there is no cell to its left (YOLOv5 also needs x > 1)
    # y = 5.5: exactly mid-cell, neither neighbour
    tg = torch.tensor([[0, 0, 0.3 / 8, 5.5 / 8, 1.0 / 8, 1.0 / 8]])
    assert cells(build_targets(tg, anchors, GRIDS)[0]) == {(0, 0, 5, 0)}
    # x = 7.8: right part of the last cell; no right neighbour exists, and 7.8 % 1 >= 0.5 means no left one
    tg = torch.tensor([[0, 0, 7.8 / 8, 5.5 / 8, 1.0 / 8, 1.0 / 8]])
    assert cells(build_targets(tg, anchors, GRIDS)[0]) == {(0, 0, 5, 7)}


def test_anchor_ratio_threshold_and_several_anchors():
    anchors = torch.tensor([[[1.0, 1.0], [2.0, 1.0], [4.0, 4.0]], [[1.0, 1.0]] * 3, [[1.0, 1.0]] * 3])
    # target 1 x 1 grid cells on level 0: anchor (1, 1) ratio 1, (2, 1) ratio 2 both match; (4, 4) ratio 4 does not
    tg = torch.tensor([[0, 0, 4.5 / 8, 4.5 / 8, 1.0 / 8, 1.0 / 8]])
    out = build_targets(tg, anchors, GRIDS, anchor_t=4.0)
    assert sorted(int(a) for a in out[0].anchor) == [0, 1]
    assert out[0].anchor_wh.tolist() == [[1.0, 1.0], [2.0, 1.0]]
    # level 1: 0.5 x 0.5 cells at (2.25, 2.25), ratio 2 -> matches; level 2: 0.25 cells, ratio 4 -> rejected
    assert len(out[1].image) == 9 and len(out[2].image) == 0  # 3 anchors x (own cell + left + upper)
    # just inside the threshold: 4/3.99 < 4 matches
    tg2 = torch.tensor([[0, 0, 4.5 / 8, 4.5 / 8, 1.0025 / 8, 1.0025 / 8]])
    assert 2 in {int(a) for a in build_targets(tg2, anchors, GRIDS)[0].anchor}


def test_no_targets():
    anchors = torch.ones(3, 3, 2)
    out = build_targets(torch.zeros((0, 6)), anchors, GRIDS)
    assert all(len(t.image) == 0 and t.box.shape == (0, 4) for t in out)


def test_ciou_hand_values():
    p = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    t = torch.tensor([[0.5, 0.5, 1.5, 1.0]])
    iou = 1.0 / 1.5
    v = 4 / math.pi**2 * (math.atan(1.5) - math.atan(1.0)) ** 2
    alpha = v / (v - iou + 1 + 1e-7)
    assert float(ciou(p, t)) == pytest.approx(iou - v * alpha, rel=1e-6)
    # shifted centre: distance term = d^2 / enclosing diagonal^2
    p2 = torch.tensor([[1.0, 0.5, 1.0, 1.0]])
    t2 = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    iou2 = 0.5 / 1.5
    assert float(ciou(p2, t2)) == pytest.approx(iou2 - 0.25 / (1.5**2 + 1.0), rel=1e-5)


def test_loss_by_hand_for_one_target():
    """All logits fixed: xy/wh logits 0 (box = cell centre, anchor size), objectness -2, classes 0."""
    nc, imgsz = 2, 64
    anchors = [[[1, 1], [4, 4], [8, 8]], [[0.125, 0.125], [2, 2], [3, 3]], [[1, 1], [2, 2], [3, 3]]]
    model = fake_model(anchors, nc)
    loss_fn = DetectionLoss(model, imgsz)
    preds = [torch.zeros(1, 3, ny, nx, 5 + nc) for ny, nx in GRIDS]
    for p in preds:
        p[..., 4] = -2.0
    # one target 1.5 x 1 cells (12 x 8 px) centred in cell (x 3, y 2) of the stride-8 grid: only anchor 0 there
    tg = torch.tensor([[0, 1, 3.5 / 8, 2.5 / 8, 1.5 / 8, 1.0 / 8]])
    loss, items = loss_fn(preds, tg)

    iou = 1.0 / 1.5  # predicted (0.5, 0.5, 1, 1) vs target (0.5, 0.5, 1.5, 1), same centre
    v = 4 / math.pi**2 * (math.atan(1.5) - math.atan(1.0)) ** 2
    c = iou - v * v / (v - iou + 1 + 1e-7)
    box = (1 - c) * 0.05 * 3 / 3
    sp = math.log1p(math.exp(-2.0))  # BCE-with-logits at x = -2 and target 0
    n0 = 3 * 8 * 8
    obj_l0 = (n0 * sp + 2.0 * c) / n0  # the one positive cell: softplus(-2) - t * (-2)
    obj = (4.0 * obj_l0 + 1.0 * sp + 0.4 * sp) * 1.0 * (imgsz / 640) ** 2
    cls = math.log(2.0) * 0.5 * nc / 80  # both class logits 0
    assert items.tolist() == pytest.approx([box, obj, cls], rel=1e-5)
    assert float(loss) == pytest.approx(box + obj + cls, rel=1e-5)  # batch of 1


def test_loss_scales_with_batch_and_single_class_has_no_cls_term():
    model = fake_model([[[1, 1], [2, 2], [3, 3]]] * 3, nc=1)
    loss_fn = DetectionLoss(model, 64)
    preds = [torch.zeros(4, 3, ny, nx, 6) for ny, nx in GRIDS]
    tg = torch.tensor([[0, 0, 0.5, 0.5, 0.2, 0.2], [3, 0, 0.3, 0.6, 0.1, 0.3]])
    loss, items = loss_fn(preds, tg)
    assert float(items[2]) == 0.0
    assert float(loss) == pytest.approx(4 * float(items.sum()), rel=1e-6)


def test_loss_gradients_flow_to_matched_predictions():
    model = fake_model([[[1, 1], [2, 2], [3, 3]]] * 3, nc=3)
    preds = [torch.zeros(1, 3, ny, nx, 8, requires_grad=True) for ny, nx in GRIDS]
    tg = torch.tensor([[0, 2, 0.4, 0.4, 0.25, 0.25]])
    loss, _ = DetectionLoss(model, 64)(preds, tg)
    loss.backward()
    g = preds[0].grad
    assert g[..., :4].abs().sum() > 0 and g[..., 5:].abs().sum() > 0
    assert torch.isfinite(g).all()
