"""Seed 000's analysis against hand-computed cases: IoU and confidence statistics, PR
curves with the best-F1 operating point, counting from detections."""

from __future__ import annotations

import numpy as np
import pytest

from cvpipe.errors import ConfigError
from cvpipe.metrics.detection import coco_evaluate
from cvpipe.metrics.detection_analysis import (
    box_iou,
    choose_count_threshold,
    confidence_statistics,
    counting_from_detections,
    describe,
    histogram,
    iou_statistics,
    operating_point,
    pr_curves,
)


def test_box_iou_vectorised() -> None:
    iou = box_iou(
        np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 5], [5, 5, 15, 15], [20, 20, 30, 30]])
    )
    np.testing.assert_allclose(iou, [[0.5, 25 / 175, 0.0]])
    assert box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0  # empty union


def test_describe_follows_pandas_conventions() -> None:
    d = describe([0.1, 0.2, 0.3, 0.4])
    assert (
        d["count"] == 4 and d["mean"] == pytest.approx(0.25) and d["min"] == 0.1 and d["max"] == 0.4
    )
    assert d["std"] == pytest.approx(0.12909944, abs=1e-8)  # sample std (ddof=1)
    assert (d["q25"], d["median"], d["q75"]) == pytest.approx((0.175, 0.25, 0.325))
    assert describe([])["count"] == 0 and describe([])["mean"] is None
    assert describe([0.5])["std"] is None


def test_histogram_counts_the_right_edge() -> None:
    h = histogram(np.array([0.0, 0.05, 0.5, 1.0]), bins=2)
    assert h == {"edges": [0.0, 0.5, 1.0], "counts": [2, 2]}


def test_iou_statistics_best_iou_per_prediction() -> None:
    gt = [
        {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "labels": [0, 1]},
        {"boxes": [], "labels": []},
    ]
    preds = [
        {  # IoU .5 with the class-0 box; 1.0 with the class-1 box but labelled 0; a weak perfect hit
            "boxes": [[0, 0, 10, 5], [20, 20, 30, 30], [20, 20, 30, 30]],
            "labels": [0, 0, 1],
            "scores": [0.9, 0.8, 0.1],
        },
        {"boxes": [[0, 0, 5, 5]], "labels": [1], "scores": [0.7]},  # no ground truth: IoU 0
    ]
    s = iou_statistics(gt, preds, bins=4)
    assert s["stats"]["count"] == 4
    assert s["stats"]["mean"] == pytest.approx((0.5 + 0.0 + 1.0 + 0.0) / 4)
    assert s["histogram"]["counts"] == [2, 0, 1, 1]
    agnostic = iou_statistics(gt, preds, class_aware=False)
    assert agnostic["stats"]["mean"] == pytest.approx((0.5 + 1.0 + 1.0 + 0.0) / 4)
    confident = iou_statistics(gt, preds, score_thresh=0.5)
    assert confident["stats"]["count"] == 3 and confident["stats"]["max"] == 0.5


def test_confidence_statistics() -> None:
    preds = [
        {"scores": [0.2, 0.9], "boxes": [[0, 0, 1, 1]] * 2, "labels": [0, 0]},
        {"scores": [0.5]},
    ]
    c = confidence_statistics(preds, bins=10)
    assert c["stats"]["count"] == 3 and c["stats"]["mean"] == pytest.approx(1.6 / 3)
    assert (
        c["stats"]["min"] == 0.2 and c["stats"]["max"] == 0.9 and sum(c["histogram"]["counts"]) == 3
    )
    assert confidence_statistics(preds, score_thresh=0.3)["stats"]["min"] == 0.5


def test_pr_curve_and_best_f1_operating_point() -> None:
    # two objects; by score: TP (.9), FP (.8), TP (.7), FP (.6). Interpolated precision is
    # 1 up to recall .5 (F1 2/3) and 2/3 up to recall 1 (F1 .8): the operating point is
    # recall 1, precision 2/3, reached at score .7.
    gt = [{"boxes": [[0, 0, 10, 10], [50, 50, 70, 70]], "labels": [0, 0]}]
    preds = [
        {
            "boxes": [[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 70, 70], [80, 80, 90, 90]],
            "labels": [0, 0, 0, 0],
            "scores": [0.9, 0.8, 0.7, 0.6],
        }
    ]
    curves = pr_curves(coco_evaluate(gt, preds, ["x", "unused"]))
    assert list(curves) == ["x"]  # classes without ground truth are left out
    c = curves["x"]
    assert len(c["recall"]) == len(c["precision_50"]) == 101
    p = np.array(c["precision_50"])
    r = np.array(c["recall"])
    np.testing.assert_allclose(p[r <= 0.5], 1.0)
    np.testing.assert_allclose(p[r > 0.5], 2 / 3)
    assert c["operating_point"] == pytest.approx(
        {"score": 0.7, "precision": 2 / 3, "recall": 1.0, "f1": 0.8}
    )
    assert c["ap50"] == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)
    assert c["precision_50_95"] == pytest.approx(c["precision_50"])  # exact boxes: every IoU agrees


def test_pr_curve_averages_over_iou_thresholds() -> None:
    gt = [{"boxes": [[0, 0, 100, 100]], "labels": [0]}]
    preds = [{"boxes": [[0, 0, 100, 62], [0, 0, 100, 100]], "labels": [0, 0], "scores": [0.9, 0.8]}]
    c = pr_curves(coco_evaluate(gt, preds, ["x"]))["x"]
    assert c["precision_50"] == pytest.approx([1.0] * 101)  # IoU .62 is a hit at .5
    assert c["precision_50_95"] == pytest.approx([0.65] * 101)  # 3 thresholds at 1, 7 at 1/2
    assert c["ap"] == pytest.approx(0.65)
    assert c["operating_point"]["score"] == pytest.approx(0.9)


def test_operating_point_none_without_hits() -> None:
    r = np.linspace(0, 1, 101)
    assert operating_point(r, np.full(101, -1.0), np.zeros(101)) is None


GT = [
    {"boxes": [[0, 0, 5, 5], [10, 10, 20, 20]], "labels": [0, 1]},
    {"boxes": [], "labels": []},
    {
        "boxes": [[0, 0, 5, 5], [30, 30, 60, 60]],
        "labels": [0, 0],
        "iscrowd": [0, 1],
    },  # crowd: not counted
]
PREDS = [
    {"boxes": [[0, 0, 1, 1]] * 3, "labels": [0, 1, 0], "scores": [0.9, 0.8, 0.3]},
    {"boxes": [[0, 0, 1, 1]], "labels": [1], "scores": [0.6]},
    {"boxes": [[0, 0, 1, 1]] * 2, "labels": [0, 0], "scores": [0.95, 0.2]},
]


def test_counting_from_detections_hand_computed() -> None:
    # true counts 2, 0, 1; at .5 the detections count 2, 1, 1
    m = counting_from_detections(GT, PREDS, 0.5)
    assert m["mae"] == pytest.approx(1 / 3) and m["exact_accuracy"] == pytest.approx(2 / 3)
    assert m["threshold"] == 0.5
    at_07 = counting_from_detections(GT, PREDS, 0.7)
    assert at_07["mae"] == 0.0 and at_07["exact_accuracy"] == 1.0
    # class 1 only: true 1, 0, 0; detections at .5: 1, 1, 0
    one = counting_from_detections(GT, PREDS, 0.5, class_index=1)
    assert one["mae"] == pytest.approx(1 / 3) and one["class_index"] == 1


def test_choose_count_threshold_on_val() -> None:
    chosen = choose_count_threshold(GT, PREDS, [0.85, 0.25, 0.7, 0.5])
    assert chosen.threshold == 0.7 and chosen.mae == 0.0 and chosen.accuracy == 1.0
    table = {row["threshold"]: row["mae"] for row in chosen.table}
    assert table == pytest.approx({0.85: 1 / 3, 0.25: 2 / 3, 0.7: 0.0, 0.5: 1 / 3})
    # ties on MAE and accuracy go to the lower threshold
    tie = choose_count_threshold(GT, PREDS, [0.75, 0.7])
    assert tie.threshold == 0.7
    default = choose_count_threshold(GT, PREDS)
    assert 0.6 < default.threshold <= 0.8 and default.mae == 0.0


def test_counting_errors() -> None:
    with pytest.raises(ConfigError, match="at least one candidate"):
        choose_count_threshold(GT, PREDS, [])
    with pytest.raises(ConfigError, match="3 ground-truth images but 2"):
        counting_from_detections(GT, PREDS[:2], 0.5)
