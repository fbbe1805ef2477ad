"""Tiny, separable image datasets written into a temp dir for the engine tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cvpipe.data.manifest import Dataset, DatasetInfo, Record

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 230), (230, 210, 40), (200, 40, 200)]


def make_dataset(
    root: Path,
    *,
    classes: int = 3,
    per_class: int = 8,
    size: int = 32,
    task: str = "classify",
    splits: dict[str, int] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``classes x per_class`` JPEGs (noisy solid colours: linearly separable).

    Args:
        splits: images per class in each split, e.g. ``{"train": 6, "val": 2}``; None
            leaves every record in ``train`` (so the trainer carves val).
        task: ``classify`` (classes a, b, c...) or ``count`` (classes "1".."N").
    """
    rng = np.random.default_rng(seed)
    names = (
        [str(i + 1) for i in range(classes)]
        if task == "count"
        else [chr(ord("a") + i) for i in range(classes)]
    )
    records = []
    for c in range(classes):
        order = (
            ["train"] * per_class
            if splits is None
            else [s for s, n in splits.items() for _ in range(n)]
        )
        for i in range(per_class):
            arr = np.clip(
                np.array(COLOURS[c % len(COLOURS)], dtype=float)
                + rng.normal(0, 25, (size, size, 3)),
                0,
                255,
            )
            rel = f"images/{names[c]}/{i:03d}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr.astype(np.uint8), "RGB").save(root / rel, quality=95)
            rec = Record(
                id=f"{names[c]}_{i:03d}", file=rel, width=size, height=size, split=order[i]
            )
            if task == "count":
                rec.count = int(names[c])
            else:
                rec.label = c
            records.append(rec)
    info = DatasetInfo(name="tiny", task=task, classes=names)
    Dataset(root, info, records).save()
    return root
