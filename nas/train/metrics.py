"""COCO-style mAP through pycocotools, and YOLOv5's fitness."""

from __future__ import annotations

import contextlib
import io

import numpy as np

from nas.lazy import lazy

coco = lazy("pycocotools.coco")
cocoeval = lazy("pycocotools.cocoeval")


def fitness(map50: float, map50_95: float) -> float:
    """YOLOv5's model fitness: 0.1 x mAP@0.5 + 0.9 x mAP@0.5:0.95."""
    return 0.1 * map50 + 0.9 * map50_95


def coco_ground_truth(labels: list[np.ndarray], shapes: list[tuple[int, int]], nc: int) -> dict:
    """A COCO ground-truth document from per-image (k, 5) [cls, x1, y1, x2, y2] boxes in image pixels.

    Image i gets id i + 1 and annotation ids start at 1 (pycocotools treats id 0 as 'unmatched');
    categories are the class indices 0..nc-1.
    """
    images, anns = [], []
    for i, (lb, (h, w)) in enumerate(zip(labels, shapes, strict=True)):
        images.append({"id": i + 1, "height": int(h), "width": int(w)})
        for c, x1, y1, x2, y2 in np.asarray(lb, dtype=np.float64).reshape(-1, 5):
            bw, bh = x2 - x1, y2 - y1
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(c),
                    "bbox": [float(x1), float(y1), float(bw), float(bh)],
                    "area": float(bw * bh),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(nc)]}


def coco_detections(preds: list[np.ndarray]) -> np.ndarray:
    """Per-image (n, 6) [x1, y1, x2, y2, conf, cls] -> pycocotools' (N, 7) [image, x, y, w, h, score, cat]."""
    rows = []
    for i, d in enumerate(preds):
        d = np.asarray(d, dtype=np.float64).reshape(-1, 6)
        if len(d):
            rows.append(
                np.column_stack(
                    (
                        np.full(len(d), i + 1),
                        d[:, 0],
                        d[:, 1],
                        d[:, 2] - d[:, 0],
                        d[:, 3] - d[:, 1],
                        d[:, 4],
                        d[:, 5],
                    )
                )
            )
    return np.concatenate(rows) if rows else np.zeros((0, 7))


def coco_map(
    preds: list[np.ndarray], labels: list[np.ndarray], shapes: list[tuple[int, int]], nc: int
) -> tuple[float, float]:
    """(mAP@0.5, mAP@0.5:0.95) by pycocotools' COCOeval over all object sizes, 100 detections per image.

    preds: per image (n, 6) [x1, y1, x2, y2, conf, cls]; labels: per image (k, 5) [cls, x1, y1, x2, y2];
    both in the original image's pixels; shapes: (h, w) per image. Images without labels count their
    detections as false positives; classes without any label are left out of the mean (COCO's rule).
    Returns zeros when there are no labels or no detections at all.
    """
    dets = coco_detections(preds)
    if not len(dets) or not sum(len(lb) for lb in labels):
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
        gt = coco.COCO()
        gt.dataset = coco_ground_truth(labels, shapes, nc)
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = cocoeval.COCOeval(gt, dt, "bbox")
        # only the 'all sizes, 100 detections' cell is read: the same numbers as summarize()'s first two
        ev.params.areaRng = [[0.0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [100]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, 0]  # (iou thresholds, recall points, classes)

    def mean(x: np.ndarray) -> float:
        x = x[x > -1]
        return float(x.mean()) if x.size else 0.0

    return mean(precision[0]), mean(precision)
