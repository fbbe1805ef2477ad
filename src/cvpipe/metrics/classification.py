"""Classification metrics in pure NumPy: accuracy, per-class P/R/F1, confusion, top-k, ECE.

Two ways in:

- :func:`classification_metrics` takes whole arrays (labels and probabilities or
  predicted labels) and returns a JSON-ready dict.
- :class:`ClassificationEvaluator` follows the ``reset / process / evaluate`` pattern so
  an evaluation over 50k images streams batch by batch in constant memory: it keeps a
  confusion matrix, top-k hit counts and calibration bin sums, never the images' rows.

Conventions (the same as scikit-learn with ``labels=range(C)`` and ``zero_division=0``):
rows of the confusion matrix are the true class, columns the predicted class; a class
never predicted has precision 0, a class absent from the labels has recall 0; macro
averages are plain means over all classes, weighted averages weigh by support.

Example:
    >>> m = classification_metrics([0, 1, 1], y_pred=[0, 1, 0], classes=["a", "b"])
    >>> m["accuracy"], m["per_class"]["b"]["recall"]
    (0.6666666666666666, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_TOP_K = (1, 3, 5)
DEFAULT_BINS = 15


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs.

    Args:
        y_true: true class indices, shape [N].
        y_pred: predicted class indices, shape [N].
        num_classes: C.

    Returns:
        int64 array [C, C]; ``cm[i, j]`` = images of class i predicted as j.

    Raises:
        ValueError: shapes differ or an index is outside ``0..C-1``.
    """
    t = _labels(y_true, num_classes, "y_true")
    p = _labels(y_pred, num_classes, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Row-normalised confusion matrix (each true class sums to 1; empty rows stay 0)."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix.

    Returns:
        four arrays of length C; 0/0 is reported as 0 (scikit-learn ``zero_division=0``).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support.astype(np.int64)


def top_k_hits(y_true: ArrayLike, probs: ArrayLike, k: int) -> np.ndarray:
    """Boolean [N]: is the true class among the ``k`` highest probabilities?

    Ties are broken towards the lower class index (a stable sort), so a uniform row
    counts as a hit for classes ``0..k-1`` only.
    """
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.int64)
    if k >= p.shape[1]:
        return np.ones(len(t), dtype=bool)
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return (top == t[:, None]).any(axis=1)


def top_k_accuracy(y_true: ArrayLike, probs: ArrayLike, k: int) -> float:
    """Fraction of rows whose true class is among the top ``k`` probabilities."""
    hits = top_k_hits(y_true, probs, k)
    return float(hits.mean()) if hits.size else 0.0


def calibration_bins(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int = DEFAULT_BINS
) -> dict[str, np.ndarray]:
    """Per-bin sums for a reliability diagram, binned on the top-1 confidence.

    Bins are equal-width on (0, 1]: bin b holds confidences in ``(b/n, (b+1)/n]``
    (a confidence of exactly 0 goes to the first bin).

    Returns:
        ``count`` [n_bins] int, ``conf_sum`` and ``correct_sum`` [n_bins] float.
    """
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.int64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges[1:], conf, side="left"), 0, n_bins - 1)
    return {
        "count": np.bincount(idx, minlength=n_bins).astype(np.int64),
        "conf_sum": np.bincount(idx, weights=conf, minlength=n_bins),
        "correct_sum": np.bincount(idx, weights=correct, minlength=n_bins),
    }


def reliability_from_bins(bins: dict[str, np.ndarray]) -> dict[str, Any]:
    """ECE and reliability-diagram data from :func:`calibration_bins` sums.

    Returns:
        ``{"ece", "bins": {"lower", "upper", "count", "confidence", "accuracy"}}``;
        empty bins have ``None`` confidence and accuracy.
    """
    count = bins["count"]
    n_bins = len(count)
    n = int(count.sum())
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    safe = np.maximum(count, 1)
    conf = bins["conf_sum"] / safe
    acc = bins["correct_sum"] / safe
    ece = float(np.sum(count * np.abs(acc - conf)) / n) if n else 0.0
    return {
        "ece": ece,
        "bins": {
            "lower": edges[:-1].tolist(),
            "upper": edges[1:].tolist(),
            "count": count.tolist(),
            "confidence": [float(c) if k else None for c, k in zip(conf, count, strict=True)],
            "accuracy": [float(a) if k else None for a, k in zip(acc, count, strict=True)],
        },
    }


def expected_calibration_error(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int = DEFAULT_BINS
) -> float:
    """ECE: the support-weighted mean gap between confidence and accuracy over bins."""
    return float(reliability_from_bins(calibration_bins(y_true, probs, n_bins))["ece"])


class ClassificationEvaluator:
    """Streaming classification metrics (``reset`` / ``process`` / ``evaluate``).

    Memory is O(C² + bins), independent of the number of images.

    Args:
        classes: class names in index order.
        top_k: the k of top-k accuracies (values ≥ C are left out, except 1).
        n_bins: calibration bins for ECE.

    Example:
        >>> ev = ClassificationEvaluator(["a", "b"])
        >>> ev.process([0, 1], np.array([[0.9, 0.1], [0.6, 0.4]]))
        >>> ev.evaluate()["accuracy"]
        0.5
    """

    def __init__(
        self,
        classes: Sequence[str],
        top_k: Sequence[int] = DEFAULT_TOP_K,
        n_bins: int = DEFAULT_BINS,
    ) -> None:
        self.classes = [str(c) for c in classes]
        self.ks = sorted({k for k in top_k if k == 1 or k < len(self.classes)})
        self.n_bins = n_bins
        self.reset()

    def reset(self) -> None:
        c = len(self.classes)
        self.cm = np.zeros((c, c), dtype=np.int64)
        self.topk = dict.fromkeys(self.ks, 0)
        self.has_probs = True
        self.bins = {
            "count": np.zeros(self.n_bins, dtype=np.int64),
            "conf_sum": np.zeros(self.n_bins),
            "correct_sum": np.zeros(self.n_bins),
        }

    def process(
        self, y_true: ArrayLike, probs: ArrayLike | None = None, y_pred: ArrayLike | None = None
    ) -> None:
        """Add a batch: true labels [N] and probabilities [N, C] (or predicted labels [N]).

        Raises:
            ValueError: neither or both of ``probs`` / ``y_pred``, or bad shapes.
        """
        c = len(self.classes)
        t = _labels(y_true, c, "y_true")
        if (probs is None) == (y_pred is None):
            raise ValueError("give exactly one of probs [N, C] or y_pred [N]")
        if probs is not None:
            p = np.asarray(probs, dtype=np.float64)
            if p.ndim != 2 or p.shape != (t.size, c):
                raise ValueError(f"probs must have shape [{t.size}, {c}], got {list(p.shape)}")
            pred = p.argmax(axis=1)
            for k in self.ks:
                self.topk[k] += int(top_k_hits(t, p, k).sum())
            for key, v in calibration_bins(t, p, self.n_bins).items():
                self.bins[key] += v
        elif y_pred is not None:
            pred = _labels(y_pred, c, "y_pred")
            self.has_probs = False
        self.cm += confusion_matrix(t, pred, c)

    def evaluate(self) -> dict[str, Any]:
        """The metrics dict (see :func:`classification_metrics`)."""
        return metrics_from_confusion(
            self.cm,
            self.classes,
            topk_hits=self.topk if self.has_probs else None,
            bins=self.bins if self.has_probs else None,
        )


def metrics_from_confusion(
    cm: np.ndarray,
    classes: Sequence[str],
    topk_hits: dict[int, int] | None = None,
    bins: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Assemble the metrics dict from accumulated counts."""
    n = int(cm.sum())
    precision, recall, f1, support = precision_recall_f1(cm)
    weights = support / n if n else np.zeros(len(support))
    out: dict[str, Any] = {
        "n": n,
        "accuracy": float(np.trace(cm) / n) if n else 0.0,
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
        },
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "weighted": {
            "precision": float(np.sum(precision * weights)),
            "recall": float(np.sum(recall * weights)),
            "f1": float(np.sum(f1 * weights)),
        },
        "confusion_matrix": {
            "labels": list(classes),
            "counts": cm.astype(int).tolist(),
            "normalized": normalize_rows(cm).tolist(),
        },
        "top_k": None,
        "ece": None,
        "reliability": None,
    }
    if topk_hits is not None and n:
        out["top_k"] = {f"top_{k}": hits / n for k, hits in sorted(topk_hits.items())}
    if bins is not None and n:
        rel = reliability_from_bins(bins)
        out["ece"] = rel["ece"]
        out["reliability"] = rel["bins"]
    return out


def classification_metrics(
    y_true: ArrayLike,
    y_prob: ArrayLike | None = None,
    *,
    y_pred: ArrayLike | None = None,
    classes: Sequence[str],
    top_k: Sequence[int] = DEFAULT_TOP_K,
    n_bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """All classification metrics for whole arrays.

    Args:
        y_true: true class indices [N].
        y_prob: class probabilities [N, C] (rows sum to 1); enables top-k and ECE.
        y_pred: predicted class indices [N], when probabilities are not available.
        classes: class names in index order (C of them).
        top_k: k values for top-k accuracy (k ≥ C is left out, since it is always 1).
        n_bins: equal-width confidence bins for ECE (15 as in Guo et al. 2017).

    Returns:
        ``{"n", "accuracy", "per_class": {name: {precision, recall, f1, support}},
        "macro", "weighted", "confusion_matrix": {"labels", "counts", "normalized"},
        "top_k": {"top_1", ...} | None, "ece": float | None, "reliability": {...} | None}``.

    Raises:
        ValueError: bad shapes or labels outside ``0..C-1``.

    Example:
        >>> classification_metrics([0, 1], [[0.8, 0.2], [0.3, 0.7]], classes=["a", "b"])["accuracy"]
        1.0
    """
    ev = ClassificationEvaluator(classes, top_k=top_k, n_bins=n_bins)
    ev.process(y_true, probs=y_prob, y_pred=y_pred)
    return ev.evaluate()


def _labels(y: ArrayLike, num_classes: int, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {list(a.shape)}")
    if a.size and not np.issubdtype(a.dtype, np.integer) and not np.all(np.equal(np.mod(a, 1), 0)):
        raise ValueError(f"{name} must hold integer class indices")
    a = a.astype(np.int64)
    if a.size and (a.min() < 0 or a.max() >= num_classes):
        raise ValueError(f"{name} has class indices outside 0..{num_classes - 1}")
    return a
