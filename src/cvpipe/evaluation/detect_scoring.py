"""Every detection number for one set of predictions: COCO metrics, seed 000's analysis
(IoU and confidence statistics, PR curves with the best-F1 point) and counting.

Shared by the evaluation of one detector (:mod:`cvpipe.evaluation.detect`) and the
comparison of several on the images they could all read
(:mod:`cvpipe.evaluation.detect_compare`).
"""

from __future__ import annotations

from typing import Any

from cvpipe.data.manifest import Record
from cvpipe.inference.detect import Detections
from cvpipe.metrics.detection import coco_evaluate
from cvpipe.metrics.detection_analysis import (
    confidence_statistics,
    counting_from_detections,
    iou_statistics,
    pr_curves,
)

#: Record ``meta`` flags that mark a true box as a crowd (ignored by COCO matching).
CROWD_FLAGS = ("iscrowd", "difficult")


def ground_truth(rec: Record) -> dict[str, Any]:
    """A record as the ground-truth entry :mod:`cvpipe.metrics.detection` takes."""
    return {
        "boxes": rec.boxes or [],
        "labels": rec.labels or [],
        "width": rec.width,
        "height": rec.height,
        "meta": rec.meta,
    }


def detection_metrics(
    records: list[Record],
    detections: list[Detections],
    classes: list[str],
    threshold: float,
) -> tuple[dict[str, Any], Any]:
    """All detection numbers for one set of predictions (see the module docstring).

    Returns:
        ``(metrics, CocoEvaluation)``.
    """
    gt = [ground_truth(r) for r in records]
    n = len(classes)
    ev = coco_evaluate(gt, detections, classes, crowd_flags=CROWD_FLAGS)
    m = ev.metrics()
    m["iou_statistics"] = iou_statistics(gt, detections, num_classes=n)
    m["iou_statistics_at_threshold"] = iou_statistics(
        gt, detections, num_classes=n, score_thresh=threshold
    )
    m["confidence_statistics"] = confidence_statistics(detections)
    m["pr_curves"] = pr_curves(ev)
    c = counting_from_detections(gt, detections, threshold, num_classes=n)
    c["count_accuracy"] = c.get("exact_accuracy")
    m["counting"] = c
    m["count_accuracy"] = c.get("exact_accuracy")
    m["mae"] = c.get("mae")
    m["n"] = len(records)
    return m, ev
