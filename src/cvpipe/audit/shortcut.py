"""Image-size shortcut: can the class be told from the image's width and height alone?

A model can learn such a cue instead of the content (in the hymenoptera set every bee
photo is at most 800 px wide while ants reach 2592 px; resizing hides the size, but not
the traces it leaves: upsampling blur, JPEG block scale, aspect-ratio padding). Two
measures, either one flags:

- over the whole set: a shallow decision tree on ``log w``, ``log h`` and ``log(w/h)``,
  cross-validated (stratified k-fold, seeded); flagged when its balanced accuracy beats
  chance (1 / classes) by ``margin``;
- for part of a class: images whose width or height lies outside the range of every other
  class (no bee is wider than 800 px or taller than 533 px, so 13 of 193 ants are told
  by size alone, while the tree's balanced accuracy stays at 0.53); flagged when a class
  has at least ``min_exclusive`` such images and ``exclusive_share`` of its images.

Example:
    >>> r = size_shortcut([100, 100, 900, 900] * 5, [100, 100, 900, 900] * 5, [0, 0, 1, 1] * 5, 2)
    >>> r.balanced_accuracy, r.flagged
    (1.0, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvpipe.audit.deps import import_sklearn


@dataclass
class ShortcutResult:
    """How well size alone predicts the class.

    Attributes:
        balanced_accuracy: cross-validated balanced accuracy of the size-only tree.
        chance: 1 / number of classes present.
        flagged: ``balanced_accuracy - chance >= margin``.
        per_class: class → width/height min, median, max.
        exclusive: class → images whose size no other class has (count, share, rule).
    """

    balanced_accuracy: float
    chance: float
    margin: float
    flagged: bool
    folds: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    exclusive: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "balanced_accuracy": round(self.balanced_accuracy, 4),
            "chance": round(self.chance, 4),
            "margin": self.margin,
            "flagged": self.flagged,
            "folds": self.folds,
            "method": "depth-3 decision tree on log width, log height, log aspect; stratified k-fold",
            "per_class": self.per_class,
            "exclusive": self.exclusive,
        }


def size_shortcut(
    widths: Sequence[int],
    heights: Sequence[int],
    labels: Sequence[int] | np.ndarray,
    n_classes: int,
    *,
    classes: Sequence[str] | None = None,
    folds: int = 5,
    margin: float = 0.1,
    exclusive_share: float = 0.05,
    min_exclusive: int = 5,
    seed: int = 0,
) -> ShortcutResult:
    """Cross-validated balanced accuracy of a size-only classifier (see the module doc)."""
    sk = import_sklearn()
    w = np.maximum(np.asarray(widths, dtype=np.float64), 1)
    h = np.maximum(np.asarray(heights, dtype=np.float64), 1)
    y = np.asarray(labels, dtype=np.int64)
    names = list(classes) if classes is not None else [str(c) for c in range(n_classes)]
    per_class = {}
    for c in np.unique(y):
        m = y == c
        per_class[names[c]] = {
            "images": int(m.sum()),
            "width_min": float(w[m].min()), "width_median": float(np.median(w[m])), "width_max": float(w[m].max()),
            "height_min": float(h[m].min()), "height_median": float(np.median(h[m])), "height_max": float(h[m].max()),
        }  # fmt: skip
    present = np.unique(y)
    counts = np.bincount(y)[present]
    chance = 1.0 / max(1, len(present))
    k = int(min(folds, counts.min())) if len(present) > 1 else 0
    exclusive = _exclusive(w, h, y, names)
    ex_flag = any(
        v["images"] >= min_exclusive and v["share"] >= exclusive_share for v in exclusive.values()
    )
    if k < 2:
        return ShortcutResult(chance, chance, margin, ex_flag, 0, per_class, exclusive)
    x = np.stack([np.log(w), np.log(h), np.log(w / h)], axis=1)
    cv = sk.model_selection.StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    tree = sk.tree.DecisionTreeClassifier(max_depth=3, class_weight="balanced", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pred = sk.model_selection.cross_val_predict(tree, x, y, cv=cv)
    bacc = float(sk.metrics.balanced_accuracy_score(y, pred))
    flagged = bacc - chance >= margin or ex_flag
    return ShortcutResult(bacc, chance, margin, flagged, k, per_class, exclusive)


def _exclusive(
    w: np.ndarray, h: np.ndarray, y: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per class: images whose width or height lies outside every other class's range."""
    out: dict[str, dict[str, Any]] = {}
    for c in np.unique(y):
        mine, other = y == c, y != c
        if not other.any():
            continue
        lw, hw, lh, hh = w[other].min(), w[other].max(), h[other].min(), h[other].max()
        hit = mine & ((w > hw) | (w < lw) | (h > hh) | (h < lh))
        if hit.any():
            out[names[c]] = {
                "images": int(hit.sum()),
                "share": round(float(hit.sum() / mine.sum()), 4),
                "rule": f"width > {hw:.0f} or width < {lw:.0f} or height > {hh:.0f} or "
                f"height < {lh:.0f} px: no other class has such an image",
            }
    return out
