"""Likely label errors: confident learning (cleanlab) on out-of-sample probabilities.

Probabilities must come from a model that did not see the image's label, else it has
memorised the (possibly wrong) label. Two sources:

- :func:`kfold_probabilities`: k-fold cross-validation of a logistic regression on the
  cached embeddings (stratified, seeded): each image is scored by the fold model that
  was trained without it;
- :func:`run_probabilities`: a trained run's predictions on the images it did not train
  on (its ``dataset.lock`` lists the ones it did); the others keep their k-fold scores.

:func:`find_label_issues` hands them to ``cleanlab.filter.find_label_issues`` and ranks
the issues by cleanlab's self-confidence label quality (lowest first), with the most
likely label as the suggestion.

Example:
    >>> probs = kfold_probabilities(x, y, n_classes=4, folds=5, seed=0)  # doctest: +SKIP
    >>> issues = find_label_issues(y, probs)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.audit.deps import import_cleanlab, import_sklearn

log = logging.getLogger(__name__)


@dataclass
class LabelIssue:
    """One image whose given label the out-of-sample model doubts.

    Attributes:
        index: record position; ``given`` / ``suggested``: class indices.
        quality: cleanlab's label quality score (0..1, low = likely wrong).
        p_given / p_suggested: out-of-sample probability of each.
        source: ``kfold`` or ``run``.
    """

    index: int
    given: int
    suggested: int
    quality: float
    p_given: float
    p_suggested: float
    source: str


def kfold_probabilities(
    x: np.ndarray, y: np.ndarray, *, n_classes: int, folds: int = 5, seed: int = 0, C: float = 1.0
) -> np.ndarray:
    """Out-of-sample class probabilities ``[N, n_classes]`` by stratified k-fold.

    Args:
        x: ``[N, D]`` embeddings; y: ``[N]`` class indices.
        folds: k (lowered to the smallest class count, at least 2).
        C: inverse L2 strength of the logistic regression.

    Returns:
        Probabilities; a class absent from a fold's training part gets probability 0 there.
    """
    sk = import_sklearn()
    counts = np.bincount(y, minlength=n_classes)
    k = int(max(2, min(folds, counts[counts > 0].min())))
    probs = np.zeros((len(y), n_classes), dtype=np.float64)
    cv = sk.model_selection.StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train_idx, test_idx in cv.split(x, y):
        model = sk.pipeline.make_pipeline(
            sk.preprocessing.StandardScaler(),
            sk.linear_model.LogisticRegression(C=C, max_iter=2000),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sk.exceptions.ConvergenceWarning)
            model.fit(x[train_idx], y[train_idx])
        p = model.predict_proba(x[test_idx])
        probs[np.ix_(test_idx, model.classes_)] = p
    return probs


def run_probabilities(run: str | Path, paths: Sequence[Path], device: str = "cpu") -> np.ndarray:
    """A classify/count run's class probabilities for ``paths`` (NaN rows where unreadable)."""
    from cvpipe.inference.classify import Predictor

    pred = Predictor.from_run(run, device=device)
    out = np.full((len(paths), len(pred.card.classes)), np.nan)
    for r in pred.predict_paths(list(paths), batch_size=32):
        if r.output is not None:
            out[r.index] = r.output
    return out


def find_label_issues(
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    filter_by: str = "prune_by_noise_rate",
    sources: Sequence[str] | None = None,
) -> tuple[list[LabelIssue], np.ndarray]:
    """Confident-learning label issues, most likely wrong first.

    Args:
        labels: ``[N]`` given class indices; probs: ``[N, K]`` out-of-sample probabilities.
        filter_by: cleanlab's filter.
        sources: where each row's probabilities came from (``kfold`` / ``run``).

    Returns:
        ``(issues, quality [N])`` where quality is cleanlab's self-confidence score.
    """
    cl = import_cleanlab()
    probs = np.clip(probs, 1e-12, None)
    probs = probs / probs.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "class has no examples" on tiny sets
        flagged = cl.filter.find_label_issues(labels, probs, filter_by=filter_by)
        quality = cl.rank.get_label_quality_scores(labels, probs, method="self_confidence")
    issues = []
    for i in np.flatnonzero(flagged):
        sug = int(np.argmax(probs[i]))
        issues.append(
            LabelIssue(
                int(i), int(labels[i]), sug, float(quality[i]), float(probs[i, labels[i]]),
                float(probs[i, sug]), sources[int(i)] if sources is not None else "kfold",
            )
        )  # fmt: skip
    issues.sort(key=lambda t: (t.quality, t.index))
    return issues, np.asarray(quality, dtype=np.float64)


def issue_json(
    issue: LabelIssue, ids: Sequence[str], files: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """One label issue as audit.json lists it."""
    return {
        "id": ids[issue.index], "file": files[issue.index],
        "given": classes[issue.given], "suggested": classes[issue.suggested],
        "quality": round(issue.quality, 4), "p_given": round(issue.p_given, 4),
        "p_suggested": round(issue.p_suggested, 4), "source": issue.source,
    }  # fmt: skip
