"""NMS against a brute-force reference; COCO mAP through our pipeline against pycocotools used directly."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from torch import nn

from nas.data.dataset import ImageSet
from nas.train.boxes import box_iou, nms, non_max_suppression, scale_boxes, xywh2xyxy, xyxy2xywh
from nas.train.metrics import coco_map, fitness
from nas.train.val import evaluate


def brute_nms(boxes: list, scores: list, classes: list, thr: float) -> list[int]:
    """Plain-Python greedy NMS per class, O(n^2): the definition, no tricks."""

    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(classes[k] != classes[i] or iou(boxes[k], boxes[i]) <= thr for k in keep):
            keep.append(i)
    return keep


def random_boxes(rng: np.random.Generator, n: int, clusters: int = 6) -> np.ndarray:
    centres = rng.uniform(20, 200, (clusters, 2))
    c = centres[rng.integers(0, clusters, n)] + rng.normal(0, 6, (n, 2))
    wh = rng.uniform(10, 60, (n, 2))
    return np.concatenate((c - wh / 2, c + wh / 2), 1)


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 300
    boxes = random_boxes(rng, n)
    scores = rng.permutation(n) / n + 0.001  # distinct scores: one valid order
    classes = rng.integers(0, 3, n)
    thr = [0.3, 0.45, 0.6, 0.7, 0.5][seed]
    ref = brute_nms(boxes.tolist(), scores.tolist(), classes.tolist(), thr)
    offset = torch.tensor(classes, dtype=torch.float64)[:, None] * 7680
    got = nms(torch.tensor(boxes) + offset, torch.tensor(scores), thr).tolist()
    assert got == ref
    got10 = nms(torch.tensor(boxes) + offset, torch.tensor(scores), thr, max_keep=10).tolist()
    assert got10 == ref[:10]
    for chunk in (1, 7, 64):  # chunk boundaries must not change the answer
        assert nms(torch.tensor(boxes) + offset, torch.tensor(scores), thr, chunk=chunk).tolist() == ref


def test_non_max_suppression_matches_brute_force():
    rng = np.random.default_rng(7)
    n, nc = 400, 4
    boxes = random_boxes(rng, n)
    obj = rng.uniform(0, 1, n)
    cls = rng.uniform(0, 1, (n, nc))
    pred = np.concatenate((xyxy2xywh(torch.tensor(boxes)).numpy(), obj[:, None], cls), 1)
    out = non_max_suppression(torch.tensor(pred, dtype=torch.float64)[None], conf_thres=0.25, iou_thres=0.5)[0]

    conf = cls * obj[:, None]
    best, j = conf.max(1), conf.argmax(1)
    cand = np.nonzero((obj > 0.25) & (best > 0.25))[0]
    ref = brute_nms(boxes[cand].tolist(), best[cand].tolist(), j[cand].tolist(), 0.5)
    expect = np.concatenate((boxes[cand][ref], best[cand][ref, None], j[cand][ref, None]), 1)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-9, atol=1e-9)

    limited = non_max_suppression(torch.tensor(pred)[None], 0.25, 0.5, max_det=5)[0]
    np.testing.assert_allclose(limited.numpy(), expect[:5], rtol=1e-9, atol=1e-9)

    multi = non_max_suppression(torch.tensor(pred)[None], 0.25, 0.5, multi_label=True)[0]
    bi, bj = np.nonzero((conf > 0.25) & (obj[:, None] > 0.25))
    ref = brute_nms(boxes[bi].tolist(), conf[bi, bj].tolist(), bj.tolist(), 0.5)
    assert len(ref) > 300 and len(multi) == 300  # max_det
    np.testing.assert_allclose(multi[:, 4].numpy(), conf[bi, bj][ref[:300]])
    np.testing.assert_allclose(multi[:, 5].numpy(), bj[ref[:300]])


def test_non_max_suppression_empty_inputs():
    pred = torch.zeros(2, 50, 7)
    pred[..., 4] = 0.0001  # all below conf_thres
    out = non_max_suppression(pred)
    assert [o.shape for o in out] == [(0, 6), (0, 6)]
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0


def test_box_helpers():
    b = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert torch.allclose(xywh2xyxy(xyxy2xywh(b)), b)
    assert float(box_iou(b, b)) == pytest.approx(1.0)
    assert float(box_iou(b, b + torch.tensor([20.0, 0, 20, 0]))) == pytest.approx(0.0)
    # letterboxed 64 x 64 from a 100 x 50 (w x h) image: ratio 0.64, pad top 16
    lb = torch.tensor([[0.0, 16.0, 64.0, 48.0]])
    assert scale_boxes(lb, (0.64, 0.64), (0, 16), (50, 100)).tolist() == [[0.0, 0.0, 100.0, 50.0]]


def coco_direct(preds, labels, shapes, nc):
    """pycocotools the documented way: JSON-style dicts, loadRes, evaluate, accumulate, summarize."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    anns = []
    for i, lb in enumerate(labels):
        for c, x1, y1, x2, y2 in lb:
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c), "iscrowd": 0,
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
            )  # fmt: skip
    gt.dataset = {
        "images": [{"id": i + 1, "height": h, "width": w} for i, (h, w) in enumerate(shapes)],
        "annotations": anns,
        "categories": [{"id": c} for c in range(nc)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        res = [
            {"image_id": i + 1, "category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s}
            for i, d in enumerate(preds)
            for x1, y1, x2, y2, s, c in d
        ]
        dt = gt.loadRes(res)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[1], ev.stats[0]


def noisy_detections(rng, labels, shape, extra: int) -> np.ndarray:
    rows = []
    h, w = shape
    for c, x1, y1, x2, y2 in labels:
        for _ in range(int(rng.integers(1, 4))):
            jit = rng.normal(0, 0.08 * (x2 - x1), 4)
            cc = c if rng.random() < 0.8 else (c + 1) % 3
            rows.append([x1 + jit[0], y1 + jit[1], x2 + jit[2], y2 + jit[3], rng.uniform(0.05, 1), cc])
    for _ in range(extra):  # background false positives
        x, y = rng.uniform(0, w - 20), rng.uniform(0, h - 20)
        rows.append([x, y, x + rng.uniform(5, 20), y + rng.uniform(5, 20), rng.uniform(0, 0.5), rng.integers(3)])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6)


def test_coco_map_equals_pycocotools_directly():
    rng = np.random.default_rng(3)
    shapes = [(120, 160), (200, 100), (64, 64), (150, 150), (90, 300)]
    labels, preds = [], []
    for k, (h, w) in enumerate(shapes):
        n = 0 if k == 2 else int(rng.integers(1, 6))  # image 2 has no labels
        x1, y1 = rng.uniform(0, w * 0.6, n), rng.uniform(0, h * 0.6, n)
        bw, bh = rng.uniform(4, w * 0.4, n), rng.uniform(4, h * 0.4, n)
        lb = np.column_stack((rng.integers(0, 3, n), x1, y1, x1 + bw, y1 + bh)).astype(np.float64)
        labels.append(lb)
        preds.append(np.zeros((0, 6)) if k == 3 else noisy_detections(rng, lb, (h, w), extra=3))  # 3: none
    ours = coco_map(preds, labels, shapes, nc=4)  # class 3 never labelled: left out of the mean
    ref = coco_direct(preds, labels, shapes, nc=4)
    assert ours == pytest.approx(ref, abs=1e-12)
    assert 0.05 < ours[1] < ours[0] < 1


def test_coco_map_edge_cases():
    shapes = [(100, 100)]
    lb = [np.array([[0, 10, 10, 50, 50]], dtype=float)]
    perfect = [np.array([[10, 10, 50, 50, 0.9, 0]], dtype=float)]
    assert coco_map(perfect, lb, shapes, 1) == pytest.approx((1.0, 1.0))
    assert coco_map([np.zeros((0, 6))], lb, shapes, 1) == (0.0, 0.0)  # no detections
    assert coco_map(perfect, [np.zeros((0, 5))], shapes, 1) == (0.0, 0.0)  # no labels
    assert fitness(0.5, 0.3) == pytest.approx(0.1 * 0.5 + 0.9 * 0.3)


class PerfectModel(nn.Module):
    """Eval-mode stand-in that 'predicts' the letterboxed ground truth of each image it is shown, in order."""

    def __init__(self, data: ImageSet, nc: int):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.data, self.nc, self.seen = data, nc, 0

    def forward(self, x):
        out = torch.zeros(x.shape[0], 8, 5 + self.nc)
        for b in range(x.shape[0]):
            lb = self.data.labels[self.seen]
            self.seen += 1
            for k, (c, cx, cy, w, h) in enumerate(lb[:8]):
                s = self.data.size
                out[b, k, :4] = torch.tensor([cx * s, cy * s, w * s, h * s])
                out[b, k, 4] = 0.9
                out[b, k, 5 + int(c)] = 1.0
        return out, []


def test_evaluate_maps_boxes_back_to_original_pixels():
    """Perfect letterboxed predictions on images of different shapes must score mAP 1 in original pixels."""
    rng = np.random.default_rng(0)
    size, shapes, labels0 = 64, [(50, 100), (120, 60), (64, 64)], []
    for _ in shapes:
        cxy = rng.uniform(0.3, 0.7, (3, 2))
        wh = rng.uniform(0.1, 0.3, (3, 2))
        labels0.append(np.column_stack((rng.integers(0, 2, 3), cxy, wh)).astype(np.float32))
    ratios, pads, labels = [], [], []
    for (h, w), lb in zip(shapes, labels0, strict=True):
        r = min(size / w, size / h)
        nw, nh = round(w * r), round(h * r)
        ratio, pad = (nw / w, nh / h), ((size - nw) // 2, (size - nh) // 2)
        ratios.append(ratio)
        pads.append(pad)
        from nas.data.augment import labels_to_letterbox

        labels.append(labels_to_letterbox(lb, (h, w), ratio, pad, size))
    data = ImageSet(
        files=[], size=size, names=["a", "b"], labels=labels, labels0=labels0, shapes0=shapes,
        ratios=ratios, pads=pads, images=np.zeros((3, size, size, 3), np.uint8),
    )  # fmt: skip
    data.files = [None] * 3
    m50, m = evaluate(PerfectModel(data, 2), data, batch=2, device="cpu")
    assert (m50, m) == pytest.approx((1.0, 1.0), abs=1e-9)
