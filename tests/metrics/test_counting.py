"""Counting metrics against hand-computed cases."""

from __future__ import annotations

import pytest

from cvpipe.metrics.counting import CountingEvaluator, class_counts, counting_metrics


def test_counting_by_hand() -> None:
    # errors: 0, +1, 0, -2, 0
    m = counting_metrics([1, 2, 3, 4, 5], [1, 3, 3, 2, 5], counts=[1, 2, 3, 4, 5])
    assert m["mae"] == pytest.approx(0.6)
    assert m["rmse"] == pytest.approx(1.0)  # sqrt((1 + 4) / 5)
    assert m["off_by_one_accuracy"] == pytest.approx(0.8)
    assert m["exact_accuracy"] == pytest.approx(0.6)
    assert m["mean_signed_error"] == pytest.approx(-0.2)
    assert m["per_count"]["2"] == {"n": 1, "mae": 1.0, "mean_signed_error": 1.0}
    assert m["per_count"]["4"] == {"n": 1, "mae": 2.0, "mean_signed_error": -2.0}


def test_per_count_lists_absent_counts_and_streams() -> None:
    ev = CountingEvaluator([1, 2, 3])
    ev.process([1, 1], [2, 1])
    ev.process([3], [1])
    m = ev.evaluate()
    assert m["per_count"]["2"] == {"n": 0, "mae": None, "mean_signed_error": None}
    assert m["per_count"]["1"]["mae"] == pytest.approx(0.5)
    assert m["mae"] == pytest.approx(1.0)
    assert m["off_by_one_accuracy"] == pytest.approx(2 / 3)


def test_fractional_predictions_and_empty() -> None:
    m = counting_metrics([2, 2], [2.5, 3.5])
    assert m["mae"] == pytest.approx(1.0) and m["off_by_one_accuracy"] == pytest.approx(0.5)
    assert counting_metrics([], [])["mae"] is None


def test_class_counts() -> None:
    assert class_counts(["1", "2", " 5"]).tolist() == [1, 2, 5]
    with pytest.raises(ValueError, match="integer class names"):
        class_counts(["cat", "dog"])
    with pytest.raises(ValueError, match="true counts"):
        counting_metrics([1, 2], [1])
