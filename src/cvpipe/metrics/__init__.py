"""Metrics in pure NumPy: classification, counting and paired comparisons.

- :mod:`cvpipe.metrics.classification`: accuracy, per-class precision/recall/F1, macro
  and weighted averages, confusion matrix, top-k, ECE and reliability-diagram data.
- :mod:`cvpipe.metrics.counting`: MAE, RMSE, off-by-one accuracy, bias, per-count MAE.
- :mod:`cvpipe.metrics.compare`: McNemar's test and paired bootstrap CIs.

Example:
    >>> from cvpipe.metrics import classification_metrics
    >>> classification_metrics([0, 1], y_pred=[0, 0], classes=["a", "b"])["accuracy"]
    0.5
"""

from __future__ import annotations

from cvpipe.metrics.classification import ClassificationEvaluator, classification_metrics
from cvpipe.metrics.compare import McNemarResult, PairedComparison, bootstrap_ci, mcnemar, paired
from cvpipe.metrics.counting import CountingEvaluator, counting_metrics

__all__ = [
    "ClassificationEvaluator",
    "CountingEvaluator",
    "McNemarResult",
    "PairedComparison",
    "bootstrap_ci",
    "classification_metrics",
    "counting_metrics",
    "mcnemar",
    "paired",
]
