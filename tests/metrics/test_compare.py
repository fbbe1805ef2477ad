"""Paired statistics against known values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cvpipe.metrics.compare import (
    binom_two_sided_half,
    bootstrap_ci,
    chi2_sf_1df,
    mcnemar,
    paired,
)


def _pairs(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return np.array(a, bool), np.array(b, bool)


def test_chi2_tail_known_quantiles() -> None:
    assert chi2_sf_1df(3.841458820694124) == pytest.approx(0.05, abs=1e-9)
    assert chi2_sf_1df(6.634896601021214) == pytest.approx(0.01, abs=1e-9)
    assert chi2_sf_1df(0.0) == 1.0


def test_exact_binomial_known_values() -> None:
    # b=1, c=8: 2 * (C(9,0) + C(9,1)) / 2^9 = 20/512
    assert binom_two_sided_half(1, 9) == pytest.approx(0.0390625)
    assert binom_two_sided_half(5, 10) == 1.0
    assert binom_two_sided_half(0, 0) == 1.0
    # large n stays finite (exact integer arithmetic)
    assert 0 < binom_two_sided_half(400, 1000) < 1e-9


def test_mcnemar_exact_small_discordant() -> None:
    a, b = _pairs(both=20, only_a=1, only_b=8, neither=5)
    r = mcnemar(a, b)
    assert (r.b, r.c, r.method) == (1, 8, "exact")
    assert r.p_value == pytest.approx(0.0390625)


def test_mcnemar_chi2_wikipedia_table() -> None:
    # Wikipedia's McNemar example: a=101, b=121, c=59, d=33
    a, b = _pairs(both=101, only_a=121, only_b=59, neither=33)
    r = mcnemar(a, b)
    assert r.method == "chi2"
    assert r.statistic == pytest.approx(61**2 / 180)  # with continuity correction
    assert r.p_value == pytest.approx(math.erfc(math.sqrt(61**2 / 360)))
    assert r.p_value < 1e-5
    uncorrected = (121 - 59) ** 2 / 180
    assert uncorrected == pytest.approx(21.35, abs=0.01)  # the figure quoted there


def test_mcnemar_identical_models_and_length_mismatch() -> None:
    a = np.array([1, 0, 1, 1], bool)
    r = mcnemar(a, a)
    assert r.p_value == 1.0 and r.b == r.c == 0
    with pytest.raises(ValueError, match="length"):
        mcnemar([1, 0], [1])


def test_bootstrap_matches_normal_approximation_and_is_seeded() -> None:
    a, b = _pairs(both=600, only_a=60, only_b=140, neither=200)
    d = b.astype(int) - a.astype(int)
    mean, low, high = bootstrap_ci(d, n_resamples=2000, seed=0)
    assert mean == pytest.approx(0.08)
    se = d.std() / math.sqrt(d.size)
    assert low == pytest.approx(mean - 1.96 * se, abs=0.006)
    assert high == pytest.approx(mean + 1.96 * se, abs=0.006)
    assert bootstrap_ci(d, seed=0) == (mean, low, high)
    assert bootstrap_ci(d, seed=1) != (mean, low, high)


def test_bootstrap_continuous_path() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.5, 2.0, 2000)
    mean, low, high = bootstrap_ci(d, n_resamples=1000, seed=0)
    se = d.std() / math.sqrt(d.size)
    assert low == pytest.approx(mean - 1.96 * se, abs=0.02)
    assert high == pytest.approx(mean + 1.96 * se, abs=0.02)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])


def test_paired_summary() -> None:
    a, b = _pairs(both=50, only_a=2, only_b=10, neither=8)
    r = paired(a, b)
    assert r.n == 70
    assert r.accuracy_a == pytest.approx(52 / 70) and r.accuracy_b == pytest.approx(60 / 70)
    assert r.diff == pytest.approx(8 / 70)
    assert r.ci_low < r.diff < r.ci_high
    assert r.mcnemar.method == "exact" and r.mcnemar.p_value == pytest.approx(
        binom_two_sided_half(2, 12)
    )
    js = r.to_json()
    assert js["mcnemar"]["b"] == 2 and js["confidence"] == 0.95
