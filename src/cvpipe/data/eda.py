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

Where things live: this module runs the verb (options, advice, samples, writing);
:mod:`cvpipe.data.eda_stats` computes the numbers, :mod:`cvpipe.data.eda_report` draws
the HTML.

Example:
    >>> summary = eda("datasets/bins", samples_per_class=8, seed=0)  # doctest: +SKIP
    >>> summary["imbalance"]["ratio"]  # doctest: +SKIP
    3.4
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from pydantic import Field

from cvpipe.config import Config, load_config
from cvpipe.data.eda_report import build_report, sample_grids
from cvpipe.data.eda_stats import (
    COCO_MEDIUM,
    COCO_SMALL,
    IMBALANCE_STRONG,
    IMBALANCE_WARN,
    UNASSIGNED,
    box_stats,
    class_distribution,
    count_stats,
    describe,
    duplicate_stats,
    file_stats,
    image_classes,
    imbalance,
    size_stats,
    split_name,
    split_order,
)
from cvpipe.data.manifest import SPLITS, Dataset, Record
from cvpipe.io import write_json
from cvpipe.tasks.registry import get_task

__all__ = [
    "COCO_MEDIUM",
    "COCO_SMALL",
    "IMBALANCE_STRONG",
    "IMBALANCE_WARN",
    "UNASSIGNED",
    "EdaConfig",
    "advice",
    "box_stats",
    "build_report",
    "class_distribution",
    "compute",
    "count_stats",
    "describe",
    "duplicate_stats",
    "eda",
    "file_stats",
    "imbalance",
    "sample_grids",
    "sample_records",
    "size_stats",
    "split_name",
]

log = logging.getLogger(__name__)


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


# -- advice ----------------------------------------------------------------------------
def advice(ds: Dataset, stats: dict[str, Any]) -> list[dict[str, Any]]:
    """What to do next: ``{"level", "text", "command"}`` items, most important first."""
    root, out = str(ds.root), []
    unit = get_task(ds.task).unit

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
    if "boxes" in stats:
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
    members: dict[int, list[Record]] = {i: [] for i in range(len(ds.output_classes))}
    for r in ds:
        for c in image_classes(ds, r):
            members[c].append(r)
    return {
        name: (len(members[c]), rng.sample(members[c], min(per_class, len(members[c]))))
        for c, name in enumerate(ds.output_classes)
    }


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
    """All the numbers of ``eda.json`` (no plots); the task adds its own sections
    (:meth:`~cvpipe.tasks.base.Task.eda_stats`: boxes for detect, counts for count)."""
    task = get_task(ds.task)
    unit = task.unit
    dist = class_distribution(ds)
    stats: dict[str, Any] = {
        "dataset": str(ds.root),
        "name": ds.info.name,
        "task": ds.task,
        "images": len(ds),
        "classes": list(ds.output_classes),
        "unit": unit,
        "splits": {
            split_name(k): v
            for k, v in sorted(ds.splits().items(), key=lambda kv: split_order(split_name(kv[0])))
        },
        "class_distribution": dist,
        "imbalance": imbalance(dist["all"], unit),
        "sizes": size_stats(ds),
        "files": file_stats(ds, cfg.probe_sample, cfg.seed),
        "duplicates": duplicate_stats(ds, cfg.hash, cfg.workers),
    }
    stats.update(task.eda_stats(ds))
    stats["advice"] = advice(ds, stats)
    return stats
