"""Seed 000's detection analysis: IoU and confidence statistics, PR curves with an operating
point, and counting from detections so detectors and counters compare on one number.

Inputs are the per-image ground truth and predictions :mod:`cvpipe.metrics.detection`
takes (boxes xyxy pixels, dataset labels, scores). Everything is vectorised NumPy.

- :func:`iou_statistics`: for every prediction, its best IoU with a ground-truth box of
  the same class in the same image (0 when there is none): count, mean, std, min,
  quartiles, max (pandas ``describe`` conventions: sample std, linear quantiles) and a
  histogram over 0..1.
- :func:`confidence_statistics`: the same table and histogram for the scores.
- :func:`pr_curves`: per-class precision–recall curves read from the COCO evaluation's
  precision array (at IoU .5 and averaged over .5:.95, all areas, 100 detections), with
  the operating point: the score threshold maximising F1 on that split.
- :func:`counting_from_detections` / :func:`choose_count_threshold`: count the detections
  scoring at least a threshold per image, compare with the true box counts (exact-count
  accuracy, MAE, ... via :func:`cvpipe.metrics.counting.counting_metrics`), and pick the
  threshold on the validation split.

Example:
    >>> gt = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}]
    >>> pr = [{"boxes": [[0, 0, 10, 5], [50, 50, 60, 60]], "scores": [0.9, 0.3], "labels": [0, 0]}]
    >>> iou_statistics(gt, pr)["stats"]["max"]
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvpipe.errors import ConfigError
from cvpipe.metrics.counting import counting_metrics
from cvpipe.metrics.detection import (
    CocoEvaluation,
    ImageBoxes,
    _get,
    _np,
    as_ground_truth,
    as_predictions,
)

DEFAULT_COUNT_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 1.0, 0.05))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: ``[N, 4]`` × ``[M, 4]`` → ``[N, M]`` (0 for empty unions)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def describe(values: Sequence[float] | np.ndarray) -> dict[str, float | int | None]:
    """count, mean, std (sample, ddof=1), min, 25%, 50%, 75%, max — pandas ``describe``."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return {
            k: (0 if k == "count" else None)
            for k in ("count", "mean", "std", "min", "q25", "median", "q75", "max")
        }
    q25, q50, q75 = np.percentile(v, [25, 50, 75])
    return {
        "count": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else None,
        "min": float(v.min()),
        "q25": float(q25),
        "median": float(q50),
        "q75": float(q75),
        "max": float(v.max()),
    }


def histogram(
    values: np.ndarray, bins: int = 20, value_range: tuple[float, float] = (0.0, 1.0)
) -> dict[str, list[float]]:
    """``{"edges": [bins + 1], "counts": [bins]}`` (the last bin includes its right edge)."""
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins, range=value_range)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def best_iou_per_prediction(
    gt: Sequence[ImageBoxes],
    preds: Sequence[ImageBoxes],
    *,
    class_aware: bool = True,
    score_thresh: float = 0.0,
) -> np.ndarray:
    """Each prediction's best IoU with a ground-truth box of its image (same class when
    ``class_aware``), for predictions scoring ``>= score_thresh``, image by image."""
    out = []
    for g, p in zip(gt, preds, strict=True):
        keep = p.scores >= score_thresh
        boxes, labels = p.boxes[keep], p.labels[keep]
        if not len(boxes):
            continue
        if not len(g.boxes):
            out.append(np.zeros(len(boxes)))
            continue
        iou = box_iou(boxes, g.boxes)
        if class_aware:
            iou = np.where(labels[:, None] == g.labels[None, :], iou, 0.0)
        out.append(iou.max(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def _normalise(
    gt: Sequence[Any], preds: Sequence[Any], num_classes: int | None
) -> tuple[list[ImageBoxes], list[ImageBoxes]]:
    if len(gt) != len(preds):
        raise ConfigError(f"{len(gt)} ground-truth images but {len(preds)} prediction entries")
    if num_classes is None:  # only label ranges matter here: take the largest label seen
        top = [int(_np(_get(x, "labels"), np.int64).max(initial=-1)) for x in [*gt, *preds]]
        num_classes = max(max(top, default=0), 0) + 1
    return as_ground_truth(gt, num_classes), as_predictions(preds, num_classes)


def iou_statistics(
    gt: Sequence[Any],
    preds: Sequence[Any],
    *,
    num_classes: int | None = None,
    class_aware: bool = True,
    score_thresh: float = 0.0,
    bins: int = 20,
) -> dict[str, Any]:
    """Best-IoU-per-prediction statistics and histogram (seed 000's IoU table).

    Returns:
        ``{"stats": describe(...), "histogram": {"edges", "counts"}, "score_thresh",
        "class_aware"}``.
    """
    g, p = _normalise(gt, preds, num_classes)
    ious = best_iou_per_prediction(g, p, class_aware=class_aware, score_thresh=score_thresh)
    return {
        "stats": describe(ious),
        "histogram": histogram(ious, bins),
        "score_thresh": score_thresh,
        "class_aware": class_aware,
    }


def confidence_statistics(
    preds: Sequence[Any], *, score_thresh: float = 0.0, bins: int = 20
) -> dict[str, Any]:
    """Score statistics and histogram of the predictions scoring ``>= score_thresh``."""
    scores = [_np(_get(x, "scores"), np.float64) for x in preds]
    s = np.concatenate(scores) if scores else np.zeros(0)
    s = s[s >= score_thresh]
    return {"stats": describe(s), "histogram": histogram(s, bins), "score_thresh": score_thresh}


@dataclass(frozen=True)
class OperatingPoint:
    """The score threshold maximising F1 on a PR curve."""

    score: float
    precision: float
    recall: float
    f1: float

    def to_json(self) -> dict[str, float]:
        return {
            "score": self.score,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def operating_point(
    recall: np.ndarray, precision: np.ndarray, scores: np.ndarray
) -> OperatingPoint | None:
    """Best-F1 point of a COCO PR curve (precision -1 marks recall never reached)."""
    valid = precision > 0
    if not valid.any():
        return None
    r, p, s = recall[valid], precision[valid], scores[valid]
    f1 = 2 * p * r / np.maximum(p + r, 1e-12)
    i = int(np.argmax(f1))
    return OperatingPoint(float(s[i]), float(p[i]), float(r[i]), float(f1[i]))


def pr_curves(evaluation: CocoEvaluation) -> dict[str, dict[str, Any]]:
    """Per-class PR curves from a :class:`~cvpipe.metrics.detection.CocoEvaluation`.

    Returns:
        ``{class: {"recall": [101], "precision_50": [101], "scores_50": [101],
        "precision_50_95": [101], "ap50", "ap", "operating_point": {score, precision,
        recall, f1} | None}}``. Precision is ``None`` past the highest recall reached;
        ``precision_50_95`` averages the IoU thresholds that reach that recall. Classes
        without ground truth are left out.
    """
    recall = evaluation.recall_thresholds
    t50 = evaluation._iou_index(0.5)
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(evaluation.classes):
        prec = evaluation.precision[:, :, k, 0, -1]  # [T, R]
        if not (prec > -1).any():
            continue
        p50, s50 = prec[t50], evaluation.scores[t50, :, k, 0, -1]
        valid = prec > -1
        n_valid = valid.sum(axis=0)
        sums = np.where(valid, prec, 0.0).sum(axis=0)
        point = operating_point(recall, p50, s50)
        out[name] = {
            "recall": [float(r) for r in recall],
            "precision_50": [float(v) if v > -1 else None for v in p50],
            "scores_50": [float(v) if pv > -1 else None for v, pv in zip(s50, p50, strict=True)],
            "precision_50_95": [
                float(v / n) if n else None for v, n in zip(sums, n_valid, strict=True)
            ],
            "ap50": evaluation.class_ap(k, 0.5),
            "ap": evaluation.class_ap(k),
            "operating_point": point.to_json() if point else None,
        }
    return out


# ---------------------------------------------------------------------- counting
def _count_matrix(
    preds: Sequence[ImageBoxes], thresholds: np.ndarray, class_index: int | None
) -> np.ndarray:
    """``[images, thresholds]`` number of predictions with score >= each threshold."""
    t = np.sort(thresholds)
    counts = np.zeros((len(preds), len(t) + 1), dtype=np.int64)
    for i, p in enumerate(preds):
        s = p.scores if class_index is None else p.scores[p.labels == class_index]
        # a score passes thresholds t[0..j-1] where j = #thresholds <= score
        np.add.at(counts[i], np.searchsorted(t, s, side="right"), 1)
    # count(t_j) = #scores with index > j  → reverse cumulative sum, shifted
    cum = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    order = np.argsort(np.argsort(thresholds))
    return cum[:, 1:][:, order]


def _true_counts(gt: Sequence[ImageBoxes], class_index: int | None) -> np.ndarray:
    sel = [(~g.crowd) & (True if class_index is None else g.labels == class_index) for g in gt]
    return np.array([int(np.sum(m)) for m in sel], dtype=np.int64)


def counting_from_detections(
    gt: Sequence[Any],
    preds: Sequence[Any],
    threshold: float,
    *,
    num_classes: int | None = None,
    class_index: int | None = None,
) -> dict[str, Any]:
    """Count detections scoring ``>= threshold`` per image and score them as a counter.

    Args:
        gt, preds: per-image ground truth and predictions (crowd boxes are not counted).
        threshold: score threshold.
        num_classes: number of classes (default: inferred from the labels).
        class_index: count one class only (default: all boxes).

    Returns:
        :func:`cvpipe.metrics.counting.counting_metrics` of true vs predicted counts
        (``mae``, ``rmse``, ``exact_accuracy`` = count accuracy, ``off_by_one_accuracy``,
        ...), plus ``threshold`` and ``class_index``.
    """
    g, p = _normalise(gt, preds, num_classes)
    pred = _count_matrix(p, np.array([threshold], dtype=np.float64), class_index)[:, 0]
    out = dict(counting_metrics(_true_counts(g, class_index), pred))
    out.update(threshold=float(threshold), class_index=class_index)
    return out


@dataclass(frozen=True)
class CountThreshold:
    """The chosen counting threshold and its validation numbers."""

    threshold: float
    mae: float
    accuracy: float
    table: list[dict[str, float]]  # every candidate: threshold, mae, accuracy


def choose_count_threshold(
    val_gt: Sequence[Any],
    val_preds: Sequence[Any],
    thresholds: Sequence[float] = DEFAULT_COUNT_THRESHOLDS,
    *,
    num_classes: int | None = None,
    class_index: int | None = None,
) -> CountThreshold:
    """Pick the score threshold whose detection counts best match the true counts on val.

    The criterion is the lowest count MAE; ties go to the higher exact-count accuracy,
    then to the lower threshold.

    Raises:
        ConfigError: no thresholds or no validation images.
    """
    if not len(thresholds):
        raise ConfigError("choose_count_threshold needs at least one candidate threshold")
    g, p = _normalise(val_gt, val_preds, num_classes)
    if not g:
        raise ConfigError("choose_count_threshold needs validation images")
    t = np.asarray(thresholds, dtype=np.float64)
    pred = _count_matrix(p, t, class_index)  # [images, thresholds]
    true = _true_counts(g, class_index)[:, None]
    err = np.abs(pred - true)
    mae = err.mean(axis=0)
    acc = (err == 0).mean(axis=0)
    best = min(range(len(t)), key=lambda j: (round(float(mae[j]), 12), -float(acc[j]), float(t[j])))
    table = [
        {"threshold": float(t[j]), "mae": float(mae[j]), "accuracy": float(acc[j])}
        for j in range(len(t))
    ]
    return CountThreshold(float(t[best]), float(mae[best]), float(acc[best]), table)
