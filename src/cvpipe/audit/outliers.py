"""Outliers: images far from every class centre of the embedding space.

Each class centre is the mean of its members' (centred, unit-norm) embeddings; an image's
score is its cosine distance to the *nearest* centre, whatever its own label, so an image
is an outlier only when it resembles no class at all (a mislabelled image near another
class is a label issue, not an outlier). Scores are turned into robust z-scores
(median and MAD over the dataset) and flagged from ``z`` on.

Example:
    >>> x = np.array([[1, 0], [1, 0.01], [0.99, 0], [0, 1]], dtype=np.float32)
    >>> s = centre_distances(x, np.array([0, 0, 0, 0]), np.ones(4, bool), 1)
    >>> int(np.argmax(s))
    3
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Outlier:
    """An image far from every class centre (``distance`` is cosine distance)."""

    index: int
    distance: float
    z: float
    nearest_class: int


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def class_centres(vectors: np.ndarray, labels: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """``[k, D]`` unit-norm class centres (a zero row for a class without images)."""
    centres = np.zeros((k, vectors.shape[1]), dtype=np.float32)
    for c in range(k):
        m = valid & (labels == c)
        if m.any():
            centres[c] = vectors[m].mean(axis=0)
    return _unit(centres)


def centre_distances(
    vectors: np.ndarray, labels: np.ndarray, valid: np.ndarray, k: int
) -> np.ndarray:
    """Cosine distance of each image to its nearest class centre (NaN where invalid)."""
    centres = class_centres(vectors, labels, valid, k)
    present = np.linalg.norm(centres, axis=1) > 0
    sims = vectors @ centres[present].T
    d = 1.0 - sims.max(axis=1)
    return np.where(valid, d, np.nan)


def find_outliers(
    vectors: np.ndarray, labels: np.ndarray, valid: np.ndarray, k: int, z: float
) -> list[Outlier]:
    """Images whose robust z-score of :func:`centre_distances` is at least ``z``; most
    distant first."""
    d = centre_distances(vectors, labels, valid, k)
    ok = np.isfinite(d)
    if ok.sum() < 3:
        return []
    med = float(np.median(d[ok]))
    mad = float(np.median(np.abs(d[ok] - med))) * 1.4826 or 1e-9
    zs = (d - med) / mad
    centres = class_centres(vectors, labels, valid, k)
    out = []
    for i in np.flatnonzero(ok & (zs >= z)):
        out.append(
            Outlier(int(i), float(d[i]), float(zs[i]), int(np.argmax(vectors[i] @ centres.T)))
        )
    out.sort(key=lambda o: -o.distance)
    return out
