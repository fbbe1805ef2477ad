"""A paired bootstrap of the mAP difference between two detectors on the same images.

The bootstrap resamples *images* with replacement (the same draw for every model),
recomputes mAP@[.5:.95] and mAP@.5 of each model on the resample and takes percentiles
of the difference. Recomputing COCO's evaluation thousands of times would be slow, so
the per-image matching (COCO's greedy matching per class and IoU threshold, crowd boxes
ignored, 100 detections per image) is done once (:func:`match`), and a resample only
re-weights images in COCO's accumulation (:func:`weighted_map`): a vectorised cumulative
sum over detections sorted by score. With all weights 1 this is COCO's mAP (tested
against :mod:`cvpipe.metrics.detection`).

Example:
    >>> a = match(gt, preds_a, num_classes=3)  # doctest: +SKIP
    >>> bootstrap_map_diff(a, match(gt, preds_b, 3), len(gt))["ci_low"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvpipe.errors import ConfigError
from cvpipe.metrics.detection import ImageBoxes
from cvpipe.metrics.detection_analysis import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = 100


# ---------------------------------------------------------------------- matching + weighted AP
@dataclass(slots=True)
class ClassMatches:
    """One class's detections over all images, in COCO's accumulation order.

    Attributes:
        image: image index of each detection [D].
        tp, ignore: [T, D] matched to a true box / to a crowd box, per IoU threshold.
        npos: non-crowd true boxes of the class per image [I].
    """

    image: np.ndarray
    tp: np.ndarray
    ignore: np.ndarray
    npos: np.ndarray


def _match_one(
    g_boxes: np.ndarray, g_crowd: np.ndarray, d_boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching of score-sorted detections to true boxes, per threshold."""
    T, D = len(IOU_THRESHOLDS), len(d_boxes)
    tp = np.zeros((T, D), dtype=bool)
    ign = np.zeros((T, D), dtype=bool)
    if not len(g_boxes) or not D:
        return tp, ign
    order = np.argsort(g_crowd, kind="mergesort")  # non-crowd first
    g_boxes, g_crowd = g_boxes[order], g_crowd[order]
    ious = box_iou(d_boxes, g_boxes)
    if g_crowd.any():  # crowd: intersection over the detection's area
        d_area = np.clip(d_boxes[:, 2] - d_boxes[:, 0], 0, None) * np.clip(
            d_boxes[:, 3] - d_boxes[:, 1], 0, None
        )
        lt = np.maximum(d_boxes[:, None, :2], g_boxes[None, g_crowd, :2])
        rb = np.minimum(d_boxes[:, None, 2:], g_boxes[None, g_crowd, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
        ious[:, g_crowd] = np.divide(
            inter, d_area[:, None], out=np.zeros_like(inter), where=d_area[:, None] > 0
        )
    for t, thr in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(g_boxes), dtype=bool)
        for d in range(D):
            best, m = min(thr, 1 - 1e-10), -1
            for g in range(len(g_boxes)):
                if taken[g] and not g_crowd[g]:
                    continue
                if m > -1 and not g_crowd[m] and g_crowd[g]:
                    break
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m == -1:
                continue
            ign[t, d] = g_crowd[m]
            tp[t, d] = True
            taken[m] = True
    return tp, ign


def match(
    gt: Sequence[ImageBoxes], preds: Sequence[ImageBoxes], num_classes: int
) -> list[ClassMatches]:
    """Per-class :class:`ClassMatches` (COCO protocol, all areas, 100 detections)."""
    out = []
    for k in range(num_classes):
        images, scores, tps, igns = [], [], [], []
        npos = np.zeros(len(gt), dtype=np.float64)
        for i, (g, p) in enumerate(zip(gt, preds, strict=True)):
            gm = g.labels == k
            npos[i] = np.sum(gm & ~g.crowd)
            pm = np.flatnonzero(p.labels == k)
            if not len(pm):
                continue
            pm = pm[np.argsort(-p.scores[pm], kind="mergesort")][:MAX_DETS]
            tp, ign = _match_one(g.boxes[gm], g.crowd[gm], p.boxes[pm])
            images.append(np.full(len(pm), i))
            scores.append(p.scores[pm])
            tps.append(tp)
            igns.append(ign)
        if not images:
            out.append(
                ClassMatches(
                    np.zeros(0, np.int64), np.zeros((10, 0), bool), np.zeros((10, 0), bool), npos
                )
            )
            continue
        s = np.concatenate(scores)
        order = np.argsort(-s, kind="mergesort")
        out.append(ClassMatches(
            np.concatenate(images)[order], np.concatenate(tps, axis=1)[:, order],
            np.concatenate(igns, axis=1)[:, order], npos,
        ))  # fmt: skip
    return out


def weighted_map(
    matches: Sequence[ClassMatches], weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """mAP@[.5:.95] and mAP@.5 for each row of image weights ``[B, I]`` (NaN: no true box).

    A weight is how many times an image appears in a bootstrap resample.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    B = w.shape[0]
    sum_all, n_all = np.zeros(B), np.zeros(B)
    sum_50, n_50 = np.zeros(B), np.zeros(B)
    offsets = 2.0 * np.arange(B)[:, None]
    for cm in matches:
        npig = w @ cm.npos  # [B]
        valid = npig > 0
        if not valid.any():
            continue
        D = len(cm.image)
        W = w[:, cm.image]  # [B, D]
        for t in range(len(IOU_THRESHOLDS)):
            if D == 0:
                ap = np.zeros(B)
            else:
                keep = ~cm.ignore[t]
                tp = np.cumsum(W * (cm.tp[t] & keep), axis=1)
                fp = np.cumsum(W * (~cm.tp[t] & keep), axis=1)
                rc = tp / np.where(valid, npig, 1.0)[:, None]
                pr = tp / (tp + fp + np.spacing(1))
                env = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                flat = (rc + offsets).ravel()
                q = (RECALL_THRESHOLDS[None, :] + offsets).ravel()
                idx = (
                    np.searchsorted(flat, q, side="left").reshape(B, -1) - np.arange(B)[:, None] * D
                )
                inside = idx < D
                vals = np.where(inside, env[np.arange(B)[:, None], np.minimum(idx, D - 1)], 0.0)
                ap = vals.mean(axis=1)
            sum_all += np.where(valid, ap, 0.0)
            n_all += valid
            if t == 0:
                sum_50 += np.where(valid, ap, 0.0)
                n_50 += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        return sum_all / n_all, sum_50 / n_50


def bootstrap_map_diff(
    a: Sequence[ClassMatches],
    b: Sequence[ClassMatches],
    n_images: int,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
) -> dict[str, Any]:
    """Paired bootstrap of mAP(b) − mAP(a) over images resampled with replacement.

    Returns:
        ``map_a``, ``map_b``, ``diff``, ``ci_low``, ``ci_high`` (mAP@[.5:.95]) and the same
        with a ``_50`` suffix for mAP@.5, ``n_resamples``, ``confidence``, ``seed``.

    Raises:
        ConfigError: no images, or confidence outside (0, 1).
    """
    if n_images < 1:
        raise ConfigError("the mAP bootstrap needs at least one image")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    ones = np.ones((1, n_images))
    ma, ma50 = weighted_map(a, ones)
    mb, mb50 = weighted_map(b, ones)
    rng = np.random.default_rng(seed)
    diffs, diffs50 = [], []
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        w = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=m).astype(np.float64)
        xa, xa50 = weighted_map(a, w)
        xb, xb50 = weighted_map(b, w)
        diffs.append(xb - xa)
        diffs50.append(xb50 - xa50)
    d, d50 = np.concatenate(diffs), np.concatenate(diffs50)
    alpha = (1 - confidence) / 2

    def ci(x: np.ndarray) -> tuple[float | None, float | None]:
        x = x[np.isfinite(x)]
        if not x.size:
            return None, None
        lo, hi = np.quantile(x, [alpha, 1 - alpha])
        return float(lo), float(hi)

    lo, hi = ci(d)
    lo50, hi50 = ci(d50)
    f = float  # noqa: E731 - short alias for the dict below
    return {
        "map_a": f(ma[0]), "map_b": f(mb[0]), "diff": f(mb[0] - ma[0]), "ci_low": lo, "ci_high": hi,
        "map_50_a": f(ma50[0]), "map_50_b": f(mb50[0]), "diff_50": f(mb50[0] - ma50[0]),
        "ci_low_50": lo50, "ci_high_50": hi50,
        "n_resamples": int(n_resamples), "confidence": confidence, "seed": seed,
    }  # fmt: skip
