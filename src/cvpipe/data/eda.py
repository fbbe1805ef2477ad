"""``cvpipe eda``: a look at a dataset before training, as ``eda.json`` + a self-contained HTML.

Everything comes from the manifest (sizes are already there) except:

- file formats and modes, read from the headers of a seeded sample of files (no decode),
- the per-class sample grids (a few thumbnails per class, decoded at reduced size),
- duplicates: summarised from ``DATASET/validation.json`` when ``cvpipe validate`` ran,
  else computed from file hashes only when asked (``hash=True``).

Contents: class distribution overall and per split, per-split counts, image width and
height per class (box plots, as in the seed-002 EDA), aspect ratios, formats; for
detect: boxes per image, relative box size and aspect, objects per class, COCO
small/medium/large; for count: the count distribution; the imbalance ratio with advice;
missing-split advice.

Example:
    >>> summary = eda("datasets/bins", samples_per_class=8, seed=0)  # doctest: +SKIP
    >>> summary["imbalance"]["ratio"]  # doctest: +SKIP
    3.4
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from cvpipe.config import Config, load_config
from cvpipe.data import boxes as B
from cvpipe.data.images import ImageReadError, probe
from cvpipe.data.manifest import SPLITS, Dataset, Record
from cvpipe.io import read_json, write_json
from cvpipe.report import Report, plots

log = logging.getLogger(__name__)

COCO_SMALL = 32**2
COCO_MEDIUM = 96**2
UNASSIGNED = "unassigned"
IMBALANCE_WARN = 3.0
IMBALANCE_STRONG = 10.0


class EdaConfig(Config):
    """Options of ``cvpipe eda``.

    Attributes:
        out: output folder (default ``DATASET/eda``).
        samples_per_class: thumbnails per class in the sample grids (0: none).
        seed: seed of the sample choice (grids and probed files).
        hash: hash every file to find duplicates when no ``validation.json`` exists.
        thumb_size: thumbnail side in pixels.
        probe_sample: files whose headers are read for formats/modes (0: none).
        workers: threads for hashing (default: all cores).
        html: write ``report.html`` (False: only ``eda.json``, no plots or thumbnails).
    """

    out: str | None = None
    samples_per_class: int = Field(default=8, ge=0, le=64)
    seed: int = 0
    hash: bool = False
    thumb_size: int = Field(default=96, ge=16, le=512)
    probe_sample: int = Field(default=200, ge=0)
    workers: int | None = Field(default=None, ge=1)
    html: bool = True


def describe(values: list[float] | np.ndarray) -> dict[str, float | None]:
    """min / p25 / median / p75 / max / mean of ``values`` (all None when empty)."""
    a = np.asarray(values, dtype=float)
    keys = ("min", "p25", "median", "p75", "max", "mean")
    if a.size == 0:
        return dict.fromkeys(keys)
    q = np.percentile(a, [0, 25, 50, 75, 100])
    return {k: round(float(v), 4) for k, v in zip(keys, [*q, a.mean()], strict=True)}


def split_name(split: str | None) -> str:
    return split if split is not None else UNASSIGNED


# -- statistics ------------------------------------------------------------------------
def class_distribution(ds: Dataset) -> dict[str, dict[str, int]]:
    """Per split (plus ``all``): class name → images (classify/count) or objects (detect)."""
    out = {"all": dict(zip(ds.classes, ds.class_counts(), strict=True))}
    for split in sorted({split_name(r.split) for r in ds}, key=_split_order):
        key = None if split == UNASSIGNED else split
        out[split] = dict(zip(ds.classes, ds.class_counts(key), strict=True))
    return out


def _split_order(name: str) -> tuple[int, str]:
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


def _image_classes(ds: Dataset, rec: Record) -> list[int]:
    if ds.task == "detect":
        return sorted(set(rec.labels or []))
    return [ds.class_index(rec)]


def size_stats(ds: Dataset) -> dict[str, Any]:
    """Width, height and aspect (w/h) overall and per class (detect: images containing it)."""
    w = np.array([r.width for r in ds], dtype=float)
    h = np.array([r.height for r in ds], dtype=float)
    per_class: dict[str, dict[str, Any]] = {}
    members: dict[int, list[int]] = {i: [] for i in range(len(ds.classes))}
    for k, r in enumerate(ds):
        for c in _image_classes(ds, r):
            members[c].append(k)
    for c, idx in members.items():
        per_class[ds.classes[c]] = {
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
    """From ``validation.json`` when present, else from file hashes when ``hash_files``."""
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
    from cvpipe.data.validate import hash_files

    return _groups_from_hashes(ds, hash_files([ds.image_path(r) for r in ds], workers))


def _groups_from_hashes(ds: Dataset, digests: list[str | None]) -> dict[str, Any]:
    first: dict[str, int] = {}
    copies: list[list[Any]] = []
    groups: set[str] = set()
    leaks = 0
    for i, d in enumerate(digests):
        if d is None:
            continue
        if d not in first:
            first[d] = i
            continue
        a, b = ds.records[first[d]], ds.records[i]
        leak = a.split is not None and b.split is not None and a.split != b.split
        leaks += leak
        groups.add(d)
        copies.append([b.file, a.file, "leak" if leak else "duplicate"])
    return {
        "source": "hash",
        "checked": True,
        "groups": len(groups),
        "copies": len(copies),
        "leaks": leaks,
        "examples": copies[:10],
    }


# -- advice ----------------------------------------------------------------------------
def advice(ds: Dataset, stats: dict[str, Any]) -> list[dict[str, Any]]:
    """What to do next: ``{"level", "text", "command"}`` items, most important first."""
    root, out = str(ds.root), []
    unit = "objects" if ds.task == "detect" else "images"

    def add(level: str, text: str, command: str | None = None) -> None:
        out.append({"level": level, "text": text, "command": command})

    imb = stats["imbalance"]
    if imb["empty_classes"]:
        add(
            "warning",
            f"classes without any {unit}: {', '.join(imb['empty_classes'])}; add data or drop them",
        )
    if imb["ratio"] is not None and imb["ratio"] > IMBALANCE_STRONG:
        add("warning", imb["advice"], f"cvpipe balance {root} --strategy oversample")
    elif imb["ratio"] is not None and imb["ratio"] > IMBALANCE_WARN:
        add("warning", imb["advice"], f"cvpipe balance {root} --strategy undersample")
    split_cmd = f"cvpipe split {root} --ratios 70/20/10 --seed 0"
    splits = stats["splits"]
    if set(splits) == {UNASSIGNED}:
        add("warning", "no train/val/test split is assigned yet", split_cmd)
    elif UNASSIGNED in splits:
        add("warning", f"{splits[UNASSIGNED]} images have no split", split_cmd)
    else:
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            add(
                "info",
                f"no {' / '.join(missing)} split: model selection and the final test share data",
                split_cmd,
            )
    dist = stats["class_distribution"]
    for split in (s for s in dist if s not in ("all", UNASSIGNED)):
        absent = [c for c, n in dist[split].items() if n == 0 and dist["all"][c] > 0]
        if absent:
            add(
                "warning",
                f"split {split!r} has no {unit} of: {', '.join(absent[:10])}",
                split_cmd + " (stratified)",
            )
    dup = stats["duplicates"]
    if dup.get("leaks"):
        add(
            "error",
            f"{dup['leaks']} identical files sit in different splits (leak)",
            f"cvpipe validate {root} --on-error skip",
        )
    elif not dup.get("checked"):
        add(
            "info",
            "duplicates not checked (run validate, or eda --hash)",
            f"cvpipe validate {root}",
        )
    small = stats["sizes"]["short_side_below_224"]
    if small:
        add(
            "info",
            f"{small} images have a short side below 224 px; they are upscaled at training time",
        )
    if ds.task == "detect":
        boxes = stats["boxes"]
        if boxes["boxes"] and boxes["coco_sizes"]["small"] / boxes["boxes"] > 0.5:
            add(
                "info",
                "most boxes are COCO-small (< 32x32 px): prefer a larger input size or an FPN detector",
            )
        if boxes["images_without_boxes"]:
            add("info", f"{boxes['images_without_boxes']} images have no boxes (kept as negatives)")
    return out


# -- samples -----------------------------------------------------------------------------
def sample_records(ds: Dataset, per_class: int, seed: int) -> dict[str, tuple[int, list[Record]]]:
    """Per class name: (images of the class, up to ``per_class`` records drawn with ``seed``)."""
    rng = random.Random(seed)
    members: dict[int, list[Record]] = {i: [] for i in range(len(ds.classes))}
    for r in ds:
        for c in _image_classes(ds, r):
            members[c].append(r)
    return {
        name: (len(members[c]), rng.sample(members[c], min(per_class, len(members[c]))))
        for c, name in enumerate(ds.classes)
    }


def sample_grids(
    ds: Dataset, samples: dict[str, tuple[int, list[Record]]], thumb: int
) -> list[tuple[str, int, bytes]]:
    """Per class: (name, images of the class, PNG grid of its sampled records, boxes drawn)."""
    from cvpipe.report.gallery import grid, thumbnail

    out = []
    for name, (n, recs) in samples.items():
        tiles = [
            thumbnail(
                ds.image_path(r), thumb, boxes=r.boxes, box_classes=r.labels,
                box_labels=[ds.classes[lab] for lab in r.labels or []], source_size=(r.width, r.height),
            )
            for r in recs
        ]  # fmt: skip
        out.append((name, n, grid(tiles, columns=8)))
    return out


# -- entry point ---------------------------------------------------------------------------
def eda(
    dataset: str | Path | Dataset,
    out: str | Path | None = None,
    samples_per_class: int = 8,
    seed: int = 0,
    *,
    hash: bool = False,
    thumb_size: int = 96,
    probe_sample: int = 200,
    workers: int | None = None,
    html: bool = True,
) -> dict[str, Any]:
    """Write ``eda.json`` and a self-contained ``report.html`` for a dataset.

    Args:
        dataset: dataset directory (or a loaded :class:`Dataset`).
        out: output folder (default ``DATASET/eda``).
        samples_per_class: thumbnails per class (0: no sample grids).
        seed: seed of the sampled thumbnails and probed headers.
        hash: hash files for duplicates when ``DATASET/validation.json`` is absent.
        thumb_size: thumbnail side in pixels.
        probe_sample: how many file headers to read for formats/modes.
        workers: hashing threads.
        html: write ``report.html``; False writes ``eda.json`` only (no thumbnails decoded).

    Returns:
        The content of ``eda.json`` (with ``outputs``: the html and json paths).

    Raises:
        DatasetError / DatasetFormatError: the dataset cannot be loaded.
        ConfigError: an invalid option value.

    Example:
        >>> s = eda("datasets/planes")  # doctest: +SKIP
        >>> s["boxes"]["coco_sizes"]  # doctest: +SKIP
        {'small': 120, 'medium': 340, 'large': 95}
    """
    cfg = load_config(
        EdaConfig,
        values={
            "out": str(out) if out is not None else None, "samples_per_class": samples_per_class, "seed": seed,
            "hash": hash, "thumb_size": thumb_size, "probe_sample": probe_sample, "workers": workers,
            "html": html,
        },
    )  # fmt: skip
    ds = dataset if isinstance(dataset, Dataset) else Dataset.load(dataset)
    out_dir = Path(cfg.out) if cfg.out else ds.root / "eda"
    stats = compute(ds, cfg)
    raw = {k: stats["boxes"].pop(k) for k in ("_rel", "_aspect")} if "boxes" in stats else {}
    samples = sample_records(ds, cfg.samples_per_class, cfg.seed)
    stats["seed"], stats["samples_per_class"] = cfg.seed, cfg.samples_per_class
    stats["samples"] = {name: [r.id for r in recs] for name, (_, recs) in samples.items() if recs}
    stats["outputs"] = {
        "html": str(out_dir / "report.html") if cfg.html else None,
        "json": str(out_dir / "eda.json"),
    }
    if cfg.html:
        grids = sample_grids(ds, samples, cfg.thumb_size) if cfg.samples_per_class else []
        build_report(ds, stats, raw, grids).save(out_dir / "report.html")
    write_json(out_dir / "eda.json", stats)
    log.info("EDA of %s written to %s", ds.root, out_dir)
    return stats


def compute(ds: Dataset, cfg: EdaConfig) -> dict[str, Any]:
    """All the numbers of ``eda.json`` (no plots)."""
    unit = "objects" if ds.task == "detect" else "images"
    dist = class_distribution(ds)
    stats: dict[str, Any] = {
        "dataset": str(ds.root),
        "name": ds.info.name,
        "task": ds.task,
        "images": len(ds),
        "classes": list(ds.classes),
        "unit": unit,
        "splits": {
            split_name(k): v
            for k, v in sorted(ds.splits().items(), key=lambda kv: _split_order(split_name(kv[0])))
        },
        "class_distribution": dist,
        "imbalance": imbalance(dist["all"], unit),
        "sizes": size_stats(ds),
        "files": file_stats(ds, cfg.probe_sample, cfg.seed),
        "duplicates": duplicate_stats(ds, cfg.hash, cfg.workers),
    }
    if ds.task == "detect":
        stats["boxes"] = box_stats(ds)
    if ds.task == "count":
        stats["counts"] = count_stats(ds)
    stats["advice"] = advice(ds, stats)
    return stats


# -- HTML ------------------------------------------------------------------------------------
def build_report(
    ds: Dataset,
    stats: dict[str, Any],
    raw: dict[str, list[float]],
    grids: list[tuple[str, int, bytes]],
) -> Report:
    """The HTML report of :func:`eda` (plots drawn from ``stats`` and the manifest)."""
    from cvpipe.report import Report

    r = Report(
        f"EDA: {ds.info.name}",
        subtitle=f"{ds.root} · task {ds.task} · {len(ds)} images · {len(ds.classes)} classes",
    )
    _summary_section(r, stats)
    _class_section(r, ds, stats)
    _size_section(r, ds, stats)
    if "boxes" in stats:
        _box_section(r, stats["boxes"], raw)
    if "counts" in stats:
        c = stats["counts"]
        r.section("Counts").metrics({"mean count": c["mean"]})
        r.image(
            plots.bar(
                list(c["distribution"]),
                list(c["distribution"].values()),
                title="images per count",
                xlabel="count",
                ylabel="images",
            ),
            "count distribution",
        )
    _duplicate_section(r, stats["duplicates"])
    if grids:
        r.section("Samples").text(
            f"Up to {stats['samples_per_class']} images per class, drawn with seed {stats['seed']}."
        )
        for name, n, png in grids:
            r.image(png, f"{name}: {len(stats['samples'].get(name, []))} of {n} images")
    return r


def _summary_section(r: Report, stats: dict[str, Any]) -> None:
    imb = stats["imbalance"]
    r.section("Summary").metrics(
        {"images": stats["images"], "classes": len(stats["classes"]), **{f"split {k}": v for k, v in stats["splits"].items()},
         "imbalance (max/min)": imb["ratio"]}
    )  # fmt: skip
    if not stats["advice"]:
        r.note("nothing to fix: classes are balanced, splits assigned", "ok")
    for item in stats["advice"]:
        r.note(item["text"], item["level"])
        if item["command"]:
            r.code(item["command"])


def _class_section(r: Report, ds: Dataset, stats: dict[str, Any]) -> None:
    dist, unit = stats["class_distribution"], stats["unit"]
    r.section("Classes")
    r.image(
        plots.bar(ds.classes, list(dist["all"].values()), title=f"{unit} per class", ylabel=unit),
        f"{unit} per class (all splits)",
    )
    splits = [s for s in dist if s != "all"]
    rows = [[c, *(dist[s][c] for s in splits), dist["all"][c]] for c in ds.classes]
    rows.append(["total", *(sum(dist[s].values()) for s in splits), sum(dist["all"].values())])
    r.table(["class", *splits, "all"], rows, caption=f"{unit} per class and split")
    if len(splits) > 1:
        r.image(
            plots.grouped_bar(
                ds.classes,
                {s: list(dist[s].values()) for s in splits},
                title=f"{unit} per class and split",
                ylabel=unit,
            ),
            "per split",
        )


def _size_section(r: Report, ds: Dataset, stats: dict[str, Any]) -> None:
    sizes = stats["sizes"]
    r.section("Image sizes")
    widths: dict[str, list[float]] = {c: [] for c in ds.classes}
    heights: dict[str, list[float]] = {c: [] for c in ds.classes}
    for rec in ds:
        for c in _image_classes(ds, rec):
            widths[ds.classes[c]].append(rec.width)
            heights[ds.classes[c]].append(rec.height)
    r.image(
        plots.boxplots(
            {}, panels={"width (px)": widths, "height (px)": heights}, title="image size per class"
        ),
        "width and height per class",
    )
    rows = [[c, v["images"], v["width"]["min"], v["width"]["median"], v["width"]["max"], v["height"]["min"], v["height"]["median"], v["height"]["max"]]
            for c, v in sizes["per_class"].items()]  # fmt: skip
    r.table(["class", "images", "w min", "w median", "w max", "h min", "h median", "h max"], rows)
    r.image(
        plots.histogram(
            [rec.width / max(rec.height, 1) for rec in ds],
            bins=30,
            title="aspect ratio (w/h)",
            xlabel="w/h",
        ),
        "aspect ratios",
    )
    r.table(
        ["size", "images"],
        sizes["most_common_sizes"],
        caption=f"most common sizes ({sizes['distinct_sizes']} distinct)",
    )
    files = stats["files"]
    r.table(["extension", "files"], list(files["extensions"].items()), caption="file extensions")
    if files["probed"]:
        rows = [[f"format {k}", v] for k, v in files["formats"].items()] + [
            [f"mode {k}", v] for k, v in files["modes"].items()
        ]
        r.table(
            ["header", "files"],
            rows,
            caption=f"formats and modes from {files['probed']} sampled headers ({files['unreadable_in_sample']} unreadable)",
        )


def _box_section(r: Report, boxes: dict[str, Any], raw: dict[str, list[float]]) -> None:
    r.section("Boxes").metrics({"boxes": boxes["boxes"], "mean per image": boxes["mean_boxes_per_image"],
                                "images without boxes": boxes["images_without_boxes"], **boxes["coco_sizes"]})  # fmt: skip
    per = boxes["boxes_per_image"]
    r.image(
        plots.bar(
            list(per), list(per.values()), title="boxes per image", xlabel="boxes", ylabel="images"
        ),
        "boxes per image",
    )
    r.image(
        plots.histogram(
            raw.get("_rel", []),
            bins=30,
            title="box size: sqrt(box area / image area)",
            xlabel="relative size",
        ),
        "relative box size",
    )
    r.image(
        plots.histogram(
            [a for a in raw.get("_aspect", []) if a == a],
            bins=30,
            title="box aspect (w/h)",
            xlabel="w/h",
        ),
        "box aspect",
    )
    rows = [[c, n, boxes["images_per_class"][c]] for c, n in boxes["objects_per_class"].items()]
    r.table(["class", "objects", "images"], rows, caption="objects per class")
    r.table(
        ["COCO size", "boxes"],
        [
            ["small (< 32²)", boxes["coco_sizes"]["small"]],
            ["medium", boxes["coco_sizes"]["medium"]],
            ["large (≥ 96²)", boxes["coco_sizes"]["large"]],
        ],
    )


def _duplicate_section(r: Report, dup: dict[str, Any]) -> None:
    r.section("Duplicates")
    if not dup.get("checked"):
        r.note(
            "not checked: run 'cvpipe validate' (or 'cvpipe eda --hash') to find identical files",
            "info",
        )
        return
    r.metrics({"groups": dup["groups"], "extra copies": dup["copies"], "leaks across splits": dup["leaks"]},
              caption=f"from {dup['source']}")  # fmt: skip
    if dup["examples"]:
        r.table(["file", "same content as", "kind"], dup["examples"], caption="first copies")
