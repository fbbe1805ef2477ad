"""The numbers of ``cvpipe eda``: class balance, image and box sizes, formats, duplicates.

Pure functions of a loaded :class:`~cvpipe.data.manifest.Dataset` (everything comes from
the manifest except the file formats/modes, read from the headers of a seeded sample,
and duplicates, read from ``validation.json`` or computed from file hashes). Each
returns the JSON-ready dict that :func:`cvpipe.data.eda.compute` puts into ``eda.json``.

Example:
    >>> imbalance({"a": 30, "b": 10}, "images")["ratio"]
    3.0
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.data import boxes as B
from cvpipe.data.duplicates import group_by_digest, hash_files
from cvpipe.data.manifest import SPLITS, Dataset, Record
from cvpipe.images import ImageReadError, probe
from cvpipe.io import read_json
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)

COCO_SMALL = 32**2
COCO_MEDIUM = 96**2
UNASSIGNED = "unassigned"
IMBALANCE_WARN = 3.0
IMBALANCE_STRONG = 10.0


def describe(values: list[float] | np.ndarray) -> dict[str, float | None]:
    """min / p25 / median / p75 / max / mean of ``values`` (all None when empty)."""
    a = np.asarray(values, dtype=float)
    keys = ("min", "p25", "median", "p75", "max", "mean")
    if a.size == 0:
        return dict.fromkeys(keys)
    q = np.percentile(a, [0, 25, 50, 75, 100])
    return {k: round(float(v), 4) for k, v in zip(keys, [*q, a.mean()], strict=True)}


def split_name(split: str | None) -> str:
    """The split's name in ``eda.json`` (``unassigned`` for records without one)."""
    return split if split is not None else UNASSIGNED


# -- statistics ------------------------------------------------------------------------
def class_distribution(ds: Dataset) -> dict[str, dict[str, int]]:
    """Per split (plus ``all``): class name → images (classify/count) or objects (detect)."""
    classes = ds.output_classes
    out = {"all": dict(zip(classes, ds.class_counts(), strict=True))}
    for split in sorted({split_name(r.split) for r in ds}, key=split_order):
        key = None if split == UNASSIGNED else split
        out[split] = dict(zip(classes, ds.class_counts(key), strict=True))
    return out


def split_order(name: str) -> tuple[int, str]:
    """Sort key: train, val, test, then other names alphabetically."""
    return (SPLITS.index(name) if name in SPLITS else len(SPLITS), name)


def imbalance(counts: dict[str, int], unit: str) -> dict[str, Any]:
    """Largest / smallest non-empty class, with advice; empty classes are listed apart."""
    present = {c: n for c, n in counts.items() if n > 0}
    empty = [c for c, n in counts.items() if n == 0]
    if not present:
        return {
            "ratio": None,
            "max_class": None,
            "min_class": None,
            "empty_classes": empty,
            "advice": None,
        }
    hi = max(present, key=lambda c: present[c])
    lo = min(present, key=lambda c: present[c])
    ratio = present[hi] / present[lo]
    advice = None
    if ratio > IMBALANCE_STRONG:
        advice = (
            f"strong imbalance ({ratio:.1f}x: {hi!r} has {present[hi]} {unit}, {lo!r} {present[lo]}): "
            "oversample the small classes or train with a weighted sampler, and judge the model by "
            "per-class precision/recall, not accuracy"
        )
    elif ratio > IMBALANCE_WARN:
        advice = (
            f"imbalance {ratio:.1f}x ({hi!r} {present[hi]} vs {lo!r} {present[lo]} {unit}): "
            "undersample to the smallest class or use class weights"
        )
    return {
        "ratio": round(ratio, 4), "max_class": hi, "min_class": lo,
        "max_count": present[hi], "min_count": present[lo], "empty_classes": empty, "advice": advice,
    }  # fmt: skip


def image_classes(ds: Dataset, rec: Record) -> list[int]:
    """Indices into ``ds.output_classes`` an image counts for (detect: every class among its
    boxes)."""
    return sorted(set(get_task(ds.task).record_classes(rec, ds.classes)))


def size_stats(ds: Dataset) -> dict[str, Any]:
    """Width, height and aspect (w/h) overall and per class (detect: images containing it)."""
    w = np.array([r.width for r in ds], dtype=float)
    h = np.array([r.height for r in ds], dtype=float)
    per_class: dict[str, dict[str, Any]] = {}
    members: dict[int, list[int]] = {i: [] for i in range(len(ds.output_classes))}
    for k, r in enumerate(ds):
        for c in image_classes(ds, r):
            members[c].append(k)
    for c, idx in members.items():
        per_class[ds.output_classes[c]] = {
            "images": len(idx),
            "width": describe(w[idx]),
            "height": describe(h[idx]),
        }
    short = np.minimum(w, h) if len(ds) else np.zeros(0)
    return {
        "width": describe(w),
        "height": describe(h),
        "aspect": describe(w / np.maximum(h, 1)),
        "distinct_sizes": len({(r.width, r.height) for r in ds}),
        "most_common_sizes": [
            [f"{a}x{b}", n] for (a, b), n in Counter((r.width, r.height) for r in ds).most_common(5)
        ],
        "short_side_below_224": int((short < 224).sum()),
        "per_class": per_class,
    }


def file_stats(ds: Dataset, sample: int, seed: int) -> dict[str, Any]:
    """Extensions of every file, plus formats/modes from the headers of a seeded sample."""
    exts = Counter(Path(r.file).suffix.lower() or "(none)" for r in ds)
    recs = list(ds.records)
    if sample < len(recs):
        recs = random.Random(seed).sample(recs, sample)
    formats: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    unreadable = 0
    for r in recs:
        try:
            info = probe(ds.image_path(r))
        except ImageReadError:
            unreadable += 1
            continue
        formats[info.format] += 1
        modes[info.mode] += 1
    return {
        "extensions": dict(exts.most_common()),
        "probed": len(recs),
        "formats": dict(formats.most_common()),
        "modes": dict(modes.most_common()),
        "unreadable_in_sample": unreadable,
    }


def box_stats(ds: Dataset) -> dict[str, Any]:
    """Detect only: boxes per image, relative size (sqrt area / sqrt image area), aspect, COCO sizes."""
    per_image = Counter(len(r.boxes or []) for r in ds)
    rel, aspect, areas = [], [], []
    for r in ds:
        img_area = max(r.width * r.height, 1)
        for b in r.boxes or []:
            a = B.area(b)
            areas.append(a)
            rel.append((a / img_area) ** 0.5)
            bh = float(b[3]) - float(b[1])
            aspect.append((float(b[2]) - float(b[0])) / bh if bh > 0 else float("nan"))
    area_arr = np.asarray(areas, dtype=float)
    images_per_class = Counter(c for r in ds for c in set(r.labels or []))
    n_boxes = int(sum(k * n for k, n in per_image.items()))
    return {
        "boxes": n_boxes,
        "boxes_per_image": {str(k): per_image[k] for k in range(max(per_image, default=0) + 1)},
        "mean_boxes_per_image": round(n_boxes / len(ds), 4) if len(ds) else None,
        "images_without_boxes": per_image.get(0, 0),
        "relative_size": describe(rel),
        "aspect": describe([a for a in aspect if a == a]),
        "coco_sizes": {
            "small": int((area_arr < COCO_SMALL).sum()),
            "medium": int(((area_arr >= COCO_SMALL) & (area_arr < COCO_MEDIUM)).sum()),
            "large": int((area_arr >= COCO_MEDIUM).sum()),
        },
        "objects_per_class": dict(zip(ds.classes, ds.class_counts(), strict=True)),
        "images_per_class": {c: images_per_class.get(i, 0) for i, c in enumerate(ds.classes)},
        "_rel": rel,
        "_aspect": aspect,
    }


def count_stats(ds: Dataset) -> dict[str, Any]:
    """Count only: images per count value, and the mean count."""
    counts = Counter(int(r.count) for r in ds if r.count is not None)
    n = sum(counts.values())
    return {
        "distribution": {str(k): counts[k] for k in sorted(counts)},
        "mean": round(sum(k * v for k, v in counts.items()) / n, 4) if n else None,
    }


def duplicate_stats(ds: Dataset, do_hash: bool, workers: int | None) -> dict[str, Any]:
    """From ``validation.json`` when present, else from file hashes when ``do_hash``."""
    path = ds.root / "validation.json"
    if path.is_file():
        try:
            problems = read_json(path).get("problems", [])
        except (OSError, ValueError, AttributeError):
            problems = []
            log.warning("%s: unreadable; duplicates not summarised (re-run cvpipe validate)", path)
        dups = [p for p in problems if p.get("kind") in ("duplicate", "leak")]
        return {
            "source": str(path), "checked": True, "groups": len({p.get("ref") for p in dups}),
            "copies": len(dups), "leaks": sum(p["kind"] == "leak" for p in dups),
            "examples": [[p.get("file"), p.get("ref"), p.get("kind")] for p in dups[:10]],
        }  # fmt: skip
    if not do_hash:
        return {"source": None, "checked": False}
    return _groups_from_hashes(ds, hash_files([ds.image_path(r) for r in ds], workers))


def _groups_from_hashes(ds: Dataset, digests: list[str | None]) -> dict[str, Any]:
    """Duplicate summary from one digest per record; copies listed in manifest order."""
    groups = group_by_digest(digests)
    copies: list[list[Any]] = []
    leaks = 0
    for i, first in sorted((i, members[0]) for members in groups.values() for i in members[1:]):
        a, b = ds.records[first], ds.records[i]
        leak = a.split is not None and b.split is not None and a.split != b.split
        leaks += leak
        copies.append([b.file, a.file, "leak" if leak else "duplicate"])
    return {
        "source": "hash",
        "checked": True,
        "groups": len(groups),
        "copies": len(copies),
        "leaks": leaks,
        "examples": copies[:10],
    }
