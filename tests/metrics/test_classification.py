"""Classification metrics against hand-computed cases (and scikit-learn when installed)."""

from __future__ import annotations

import numpy as np
import pytest

from cvpipe.metrics.classification import (
    ClassificationEvaluator,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    normalize_rows,
    top_k_accuracy,
)

# 10 images, 3 classes: supports 3, 2, 5
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2, 1]


def test_confusion_matrix_by_hand() -> None:
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [1, 1, 3]]
    norm = normalize_rows(cm)
    assert norm[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    assert norm[2].tolist() == pytest.approx([0.2, 0.2, 0.6])
    # an empty row stays zero instead of dividing by zero
    assert normalize_rows(np.array([[0, 0], [1, 1]])).tolist() == [[0, 0], [0.5, 0.5]]


def test_per_class_macro_weighted_by_hand() -> None:
    m = classification_metrics(Y_TRUE, y_pred=Y_PRED, classes=["a", "b", "c"])
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(0.6)
    pc = m["per_class"]
    assert pc["a"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    assert pc["b"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 2, "f1": 0.4, "support": 2})
    assert pc["c"] == pytest.approx(
        {"precision": 3 / 4, "recall": 3 / 5, "f1": 2 / 3, "support": 5}
    )
    assert m["macro"] == pytest.approx(
        {"precision": 1.75 / 3, "recall": (2 / 3 + 0.5 + 0.6) / 3, "f1": (4 / 3 + 0.4) / 3}
    )
    assert m["weighted"] == pytest.approx(
        {
            "precision": 0.3 * 2 / 3 + 0.2 / 3 + 0.5 * 0.75,
            "recall": 0.6,
            "f1": 0.2 + 0.08 + 0.5 * 2 / 3,
        }
    )
    assert m["confusion_matrix"]["counts"] == [[2, 1, 0], [0, 1, 1], [1, 1, 3]]
    assert m["confusion_matrix"]["labels"] == ["a", "b", "c"]
    # without probabilities there is no top-k or calibration
    assert m["top_k"] is None and m["ece"] is None


def test_seed001_benchmark_one_class_predictor() -> None:
    """Seed 001 benchmark I: always predicting class 1 on 100 images per class."""
    y_true = np.repeat(np.arange(5), 100)
    m = classification_metrics(y_true, y_pred=np.zeros(500, int), classes=["1", "2", "3", "4", "5"])
    assert m["accuracy"] == pytest.approx(0.2)
    assert m["per_class"]["1"]["precision"] == pytest.approx(0.2)
    assert m["per_class"]["1"]["recall"] == 1.0
    assert m["per_class"]["1"]["f1"] == pytest.approx(1 / 3)
    for c in "2345":  # never predicted: 0 by convention, not NaN
        assert m["per_class"][c] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 100}


def test_top_k_by_hand() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    y = [0, 1, 2, 2]
    assert top_k_accuracy(y, probs, 1) == pytest.approx(0.25)
    assert top_k_accuracy(y, probs, 2) == pytest.approx(0.75)
    assert top_k_accuracy(y, probs, 3) == 1.0
    m = classification_metrics(y, probs, classes=["a", "b", "c"], top_k=(1, 2, 5))
    assert m["top_k"] == pytest.approx({"top_1": 0.25, "top_2": 0.75})  # k >= C left out


def test_ece_by_hand_distinct_bins() -> None:
    # confidences 0.9 (right), 0.85 (wrong), 0.7 (right), 0.62 (wrong), each in its own bin
    probs = np.array([[0.9, 0.1], [0.85, 0.15], [0.3, 0.7], [0.62, 0.38]])
    y = [0, 1, 1, 1]
    expected = (0.1 + 0.85 + 0.3 + 0.62) / 4
    assert expected_calibration_error(y, probs) == pytest.approx(expected)
    m = classification_metrics(y, probs, classes=["a", "b"])
    rel = m["reliability"]
    assert len(rel["count"]) == 15 and sum(rel["count"]) == 4
    assert (
        rel["count"][13] == 1
        and rel["accuracy"][13] == 1.0
        and rel["confidence"][13] == pytest.approx(0.9)
    )
    assert rel["accuracy"][0] is None  # empty bins have no value


def test_ece_shared_bin_and_perfect_calibration() -> None:
    probs = np.array([[0.9, 0.1], [0.92, 0.08]])
    assert expected_calibration_error([0, 1], probs) == pytest.approx(abs(0.5 - 0.91))
    # always right with confidence 1: perfectly calibrated
    assert expected_calibration_error([0, 1], np.eye(2)) == 0.0


def test_streaming_equals_whole() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(503, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 4, 503)
    whole = classification_metrics(y, probs, classes=list("abcd"))
    ev = ClassificationEvaluator(list("abcd"))
    for s in range(0, 503, 64):
        ev.process(y[s : s + 64], probs[s : s + 64])
    streamed = ev.evaluate()
    assert streamed["confusion_matrix"] == whole["confusion_matrix"]
    assert streamed["ece"] == pytest.approx(whole["ece"])
    assert streamed["top_k"] == pytest.approx(whole["top_k"])
    assert streamed["accuracy"] == whole["accuracy"]


def test_against_sklearn() -> None:
    import sklearn.metrics as sk  # a test dependency (pyproject [test])

    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))
    m = classification_metrics(y, y_pred=p, classes=list("abcde"))
    prec, rec, f1, sup = sk.precision_recall_fscore_support(y, p, labels=range(5), zero_division=0)
    assert [m["per_class"][c]["f1"] for c in "abcde"] == pytest.approx(f1.tolist())
    assert m["macro"]["f1"] == pytest.approx(sk.f1_score(y, p, average="macro"))
    assert m["weighted"]["precision"] == pytest.approx(sk.precision_score(y, p, average="weighted"))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="outside 0..1"):
        classification_metrics([0, 2], y_pred=[0, 1], classes=["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([0, 1], np.ones((2, 3)) / 3, classes=["a", "b"])
    with pytest.raises(ValueError, match="exactly one"):
        classification_metrics([0, 1], classes=["a", "b"])
    empty = classification_metrics([], y_pred=[], classes=["a", "b"])
    assert empty["n"] == 0 and empty["accuracy"] == 0.0
