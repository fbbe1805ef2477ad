"""Paired statistics for comparing two models on the same images.

- :func:`mcnemar`: McNemar's test on paired correctness; exact two-sided binomial test
  when there are few discordant pairs, chi-square with continuity correction otherwise.
- :func:`bootstrap_ci`: percentile bootstrap confidence interval of the mean of paired
  per-image differences (seeded, vectorised).
- :func:`paired`: both for two boolean "correct" vectors (accuracy difference B − A).

Everything is NumPy and the standard library (``math.erfc`` for the chi-square tail);
no SciPy needed.

Example:
    >>> a = [True, True, False, False, True]
    >>> b = [True, True, True, True, True]
    >>> r = paired(a, b)
    >>> round(r.diff, 2), r.mcnemar.b, r.mcnemar.c
    (0.4, 0, 2)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

EXACT_BELOW = 25  # discordant pairs below which the exact binomial test is used


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """McNemar's test.

    Attributes:
        b: pairs where A is right and B wrong.
        c: pairs where A is wrong and B right.
        statistic: chi-square (corrected) statistic, or ``min(b, c)`` for the exact test.
        p_value: two-sided p-value.
        method: ``"exact"`` (binomial) or ``"chi2"`` (with continuity correction).
    """

    b: int
    c: int
    statistic: float
    p_value: float
    method: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def binom_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` Bernoulli(0.5) trials.

    Equals ``min(1, 2 * P[X <= min(k, n - k)])`` by symmetry.
    """
    if n == 0:
        return 1.0
    m = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(m + 1))
    # exact integer arithmetic, then one division: no underflow for large n
    return min(1.0, float(2 * tail / (2**n)))


def chi2_sf_1df(x: float) -> float:
    """Survival function of the chi-square distribution with one degree of freedom."""
    if x <= 0:
        return 1.0
    return math.erfc(math.sqrt(x / 2.0))


def mcnemar(a_correct: ArrayLike, b_correct: ArrayLike, exact: bool | None = None) -> McNemarResult:
    """McNemar's test on paired correctness of two models.

    Args:
        a_correct: booleans [N], model A right on image i.
        b_correct: booleans [N], model B right on the same image i.
        exact: force the exact binomial test (True) or the chi-square (False); by default
            exact when fewer than 25 discordant pairs.

    Returns:
        :class:`McNemarResult`.

    Raises:
        ValueError: the two vectors differ in length.

    Example:
        >>> mcnemar([1, 1, 1, 0], [0, 0, 0, 0]).p_value
        0.25
    """
    a = np.asarray(a_correct, dtype=bool).reshape(-1)
    bb = np.asarray(b_correct, dtype=bool).reshape(-1)
    if a.shape != bb.shape:
        raise ValueError(f"paired vectors differ in length: {a.size} vs {bb.size}")
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    n = b + c
    use_exact = n < EXACT_BELOW if exact is None else exact
    if use_exact:
        return McNemarResult(b, c, float(min(b, c)), binom_two_sided_half(b, n), "exact")
    # Edwards' continuity correction, as statsmodels' mcnemar(exact=False, correction=True)
    stat = (abs(b - c) - 1.0) ** 2 / n if n else 0.0
    return McNemarResult(b, c, float(stat), chi2_sf_1df(stat), "chi2")


def bootstrap_ci(
    diff: ArrayLike,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap CI of the mean of paired differences.

    Resamples images with replacement ``n_resamples`` times. When the differences take
    few distinct values (e.g. −1/0/+1 for correctness), resampling N images is drawn as
    one multinomial over those values: the same distribution, in O(n_resamples) time
    and memory whatever N is. Otherwise indices are drawn in chunks of bounded size.

    Args:
        diff: per-image differences [N] (e.g. ``b_correct - a_correct``).
        n_resamples: bootstrap resamples.
        confidence: e.g. 0.95.
        seed: RNG seed; the same seed gives the same interval.

    Returns:
        ``(mean, low, high)``.

    Raises:
        ValueError: empty input or confidence outside (0, 1).

    Example:
        >>> bootstrap_ci([0, 0, 0])
        (0.0, 0.0, 0.0)
    """
    d = np.asarray(diff, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("bootstrap_ci needs at least one paired difference")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    n = d.size
    values, counts = np.unique(d, return_counts=True)
    if len(values) <= 16:
        draws = rng.multinomial(n, counts / n, size=n_resamples)
        means = draws @ values / n
    else:
        chunk = max(1, 4_000_000 // n)
        parts = []
        for start in range(0, n_resamples, chunk):
            m = min(chunk, n_resamples - start)
            idx = rng.integers(0, n, size=(m, n))
            parts.append(d[idx].mean(axis=1))
        means = np.concatenate(parts)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(d.mean()), float(low), float(high)


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """A paired comparison of model B against model A on the same N images."""

    n: int
    accuracy_a: float
    accuracy_b: float
    diff: float  # accuracy_b - accuracy_a
    ci_low: float
    ci_high: float
    confidence: float
    mcnemar: McNemarResult

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["mcnemar"] = self.mcnemar.to_json()
        return out


def paired(
    a_correct: ArrayLike,
    b_correct: ArrayLike,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """McNemar's test and a bootstrap CI of the accuracy difference (B − A).

    Args:
        a_correct: booleans [N] for the baseline A.
        b_correct: booleans [N] for B, same images in the same order.
        n_resamples, confidence, seed: see :func:`bootstrap_ci`.

    Raises:
        ValueError: lengths differ or N is 0.
    """
    a = np.asarray(a_correct, dtype=bool).reshape(-1)
    b = np.asarray(b_correct, dtype=bool).reshape(-1)
    test = mcnemar(a, b)
    diff, low, high = bootstrap_ci(
        b.astype(np.int8) - a.astype(np.int8), n_resamples, confidence, seed
    )
    return PairedComparison(
        n=int(a.size),
        accuracy_a=float(a.mean()),
        accuracy_b=float(b.mean()),
        diff=diff,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        mcnemar=test,
    )
