"""Split ratios and how many images of each stratum go to each split.

:func:`parse_ratios` reads ``"70/20/10"``-style ratios; :func:`largest_remainder` and
:func:`allocate` turn them into whole numbers of images, so that every stratum *and* the
split totals follow the ratios within one image (:mod:`cvpipe.data.split` uses them).

Example:
    >>> allocate([10, 5], parse_ratios("60/40"))
    [[6, 4], [3, 2]]
"""

from __future__ import annotations

import math
import re

from cvpipe.errors import ConfigError


def parse_ratios(text: str) -> tuple[float, ...]:
    """Parse ``"70/20/10"``, ``"80/20"``, ``"0.8,0.2"`` into fractions summing to 1.

    Raises:
        ConfigError: not numbers, not 2 or 3 parts, negative, train 0, or a sum other than 100 or 1.

    Example:
        >>> parse_ratios("70/20/10")
        (0.7, 0.2, 0.1)
    """
    hint = "expected train/val[/test] like 70/20/10, 80/20 or 0.8,0.2"
    parts = [p for p in re.split(r"[/,:\s]+", str(text).strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"ratios {text!r}: not numbers; {hint}") from None
    if len(values) not in (2, 3):
        raise ConfigError(f"ratios {text!r}: {len(values)} part(s); {hint}")
    if any(v < 0 or not math.isfinite(v) for v in values):
        raise ConfigError(f"ratios {text!r}: negative or infinite part; {hint}")
    total = sum(values)
    if math.isclose(total, 100.0, abs_tol=1e-6):
        values = [v / 100.0 for v in values]
    elif not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(
            f"ratios {text!r} sum to {total:g}; they must sum to 100 (70/20/10) or 1 (0.7,0.2,0.1)"
        )
    if values[0] <= 0:
        raise ConfigError(f"ratios {text!r}: the train share must be above 0")
    return tuple(round(v, 12) for v in values)


def largest_remainder(n: int, ratios: tuple[float, ...] | list[float]) -> list[int]:
    """Integers summing to ``n`` proportional to ``ratios`` (ties go to the earlier split).

    Example:
        >>> largest_remainder(10, (0.65, 0.25, 0.1))
        [7, 2, 1]
    """
    exact = [round(n * r, 9) for r in ratios]
    out = [math.floor(x) for x in exact]
    order = sorted(range(len(ratios)), key=lambda s: (-(exact[s] - out[s]), s))
    for s in order[: n - sum(out)]:
        out[s] += 1
    return out


def allocate(sizes: list[int], ratios: tuple[float, ...], min_one: bool = False) -> list[list[int]]:
    """Split sizes per stratum: ``out[stratum][split]``.

    Each stratum gets the floor of its exact share per split; the leftover images are handed
    out in order of largest fractional part while the split totals stay at their own
    largest-remainder targets, so strata and totals both follow the ratios within one image.
    Strata of one or two images go to train. With ``min_one``, a stratum at least as big as
    the number of (non-empty) splits has at least one image in each.
    """
    k = len(ratios)
    out = [[0] * k for _ in sizes]
    live = [c for c, n in enumerate(sizes) if n > 2]
    for c, n in enumerate(sizes):
        if n <= 2:
            out[c][0] = n
    exact = {c: [round(sizes[c] * r, 9) for r in ratios] for c in live}
    for c in live:
        out[c] = [math.floor(x) for x in exact[c]]
    target = largest_remainder(sum(sizes[c] for c in live), ratios)
    need_row = {c: sizes[c] - sum(out[c]) for c in live}
    need_col = [target[s] - sum(out[c][s] for c in live) for s in range(k)]
    cands = sorted(
        (-(exact[c][s] - out[c][s]), s, c)
        for c in live
        for s in range(k)
        if exact[c][s] > out[c][s]
    )
    for _, s, c in cands:
        if need_row[c] > 0 and need_col[s] > 0:
            out[c][s] += 1
            need_row[c] -= 1
            need_col[s] -= 1
    for c in live:  # rare: the greedy pass could not meet every row exactly
        while need_row[c] > 0:
            s = max(range(k), key=lambda j: (need_col[j], exact[c][j] - out[c][j], -j))
            out[c][s] += 1
            need_row[c] -= 1
            need_col[s] -= 1
    if min_one:
        useful = [s for s in range(k) if ratios[s] > 0]
        for c, n in enumerate(sizes):
            if n < len(useful):
                continue
            for s in useful:
                if out[c][s] == 0:
                    donor = max(range(k), key=lambda j: (out[c][j], -j))
                    out[c][donor] -= 1
                    out[c][s] += 1
    return out
