"""Counting metrics: MAE, RMSE, off-by-one accuracy, bias and per-count MAE.

A counter is a classifier whose class names are counts (``"1" .. "5"`` in seeds 001/002);
:func:`class_counts` turns those names into integers so predicted and true class
indices become counts.

Example:
    >>> m = counting_metrics([1, 2, 3], [1, 3, 5])
    >>> m["mae"], m["off_by_one_accuracy"], m["mean_signed_error"]
    (1.0, 0.6666666666666666, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


def class_counts(classes: Sequence[str]) -> np.ndarray:
    """The integer count each class name stands for.

    Raises:
        ValueError: a class name is not an integer (the model is not a counter).
    """
    try:
        return np.array([int(str(c).strip()) for c in classes], dtype=np.int64)
    except ValueError:
        raise ValueError(f"counting needs integer class names, got {list(classes)}") from None


class CountingEvaluator:
    """Streaming counting metrics (``reset`` / ``process`` / ``evaluate``) in O(#counts) memory.

    Args:
        counts: the possible true counts (for the per-count table), e.g. ``[1, 2, 3, 4, 5]``;
            counts met outside this list are added as they come.
    """

    def __init__(self, counts: Sequence[int] = ()) -> None:
        self.counts = [int(c) for c in counts]
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.abs_sum = 0.0
        self.sq_sum = 0.0
        self.signed_sum = 0.0
        self.within_one = 0
        self.exact = 0
        self.per_count: dict[int, list[float]] = {
            c: [0, 0.0, 0.0] for c in self.counts
        }  # n, |err| sum, err sum

    def process(self, true_counts: ArrayLike, pred_counts: ArrayLike) -> None:
        """Add a batch of true and predicted counts (numbers; predictions may be fractional)."""
        t = np.asarray(true_counts, dtype=np.float64).reshape(-1)
        p = np.asarray(pred_counts, dtype=np.float64).reshape(-1)
        if t.shape != p.shape:
            raise ValueError(f"{t.size} true counts but {p.size} predicted counts")
        err = p - t
        self.n += int(t.size)
        self.abs_sum += float(np.abs(err).sum())
        self.sq_sum += float((err**2).sum())
        self.signed_sum += float(err.sum())
        self.within_one += int((np.abs(err) <= 1 + 1e-9).sum())
        self.exact += int((np.abs(err) < 1e-9).sum())
        for value in np.unique(t):
            sel = t == value
            row = self.per_count.setdefault(int(value), [0, 0.0, 0.0])
            row[0] += int(sel.sum())
            row[1] += float(np.abs(err[sel]).sum())
            row[2] += float(err[sel].sum())

    def evaluate(self) -> dict[str, Any]:
        """``{"mae", "rmse", "off_by_one_accuracy", "exact_accuracy", "mean_signed_error",
        "per_count": {count: {"n", "mae", "mean_signed_error"}}}`` (None when empty)."""
        n = self.n
        per = {
            str(c): {
                "n": int(row[0]),
                "mae": row[1] / row[0] if row[0] else None,
                "mean_signed_error": row[2] / row[0] if row[0] else None,
            }
            for c, row in sorted(self.per_count.items())
        }
        if not n:
            return {
                "mae": None,
                "rmse": None,
                "off_by_one_accuracy": None,
                "exact_accuracy": None,
                "mean_signed_error": None,
                "per_count": per,
            }
        return {
            "mae": self.abs_sum / n,
            "rmse": float(np.sqrt(self.sq_sum / n)),
            "off_by_one_accuracy": self.within_one / n,
            "exact_accuracy": self.exact / n,
            "mean_signed_error": self.signed_sum / n,
            "per_count": per,
        }


def counting_metrics(
    true_counts: ArrayLike, pred_counts: ArrayLike, counts: Sequence[int] = ()
) -> dict[str, Any]:
    """Counting metrics for whole arrays.

    Args:
        true_counts: true counts [N].
        pred_counts: predicted counts [N] (integers, or expected counts as floats).
        counts: the count values to list in ``per_count`` even when absent.

    Returns:
        ``mae``, ``rmse``, ``off_by_one_accuracy`` (|error| ≤ 1), ``exact_accuracy``,
        ``mean_signed_error`` (prediction − truth: > 0 means over-counting) and
        ``per_count`` (MAE and bias for each true count).

    Example:
        >>> counting_metrics([2, 2], [2, 4])["rmse"]
        1.4142135623730951
    """
    ev = CountingEvaluator(counts)
    ev.process(true_counts, pred_counts)
    return ev.evaluate()
