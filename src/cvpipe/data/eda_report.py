"""The HTML report of ``cvpipe eda``: plots, tables, advice and per-class sample grids.

:func:`build_report` turns the statistics of :func:`cvpipe.data.eda.compute` (plus the
manifest, for per-class sizes) into a self-contained :class:`~cvpipe.report.Report`;
:func:`sample_grids` draws a thumbnail grid per class with
:mod:`cvpipe.report.gallery` (boxes drawn for detect).

Example:
    >>> grids = sample_grids(ds, sample_records(ds, 8, seed=0), thumb=96)  # doctest: +SKIP
    >>> build_report(ds, stats, raw, grids).save("eda/report.html")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from cvpipe.data.eda_stats import image_classes
from cvpipe.data.manifest import Dataset, Record
from cvpipe.report import Report, plots


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
                orientation=r.orientation,
            )
            for r in recs
        ]  # fmt: skip
        out.append((name, n, grid(tiles, columns=8)))
    return out


def build_report(
    ds: Dataset,
    stats: dict[str, Any],
    raw: dict[str, list[float]],
    grids: list[tuple[str, int, bytes]],
) -> Report:
    """The HTML report of :func:`~cvpipe.data.eda.eda` (plots drawn from ``stats`` and the manifest)."""
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
        plots.bar(
            ds.output_classes, list(dist["all"].values()), title=f"{unit} per class", ylabel=unit
        ),
        f"{unit} per class (all splits)",
    )
    splits = [s for s in dist if s != "all"]
    rows = [[c, *(dist[s][c] for s in splits), dist["all"][c]] for c in ds.output_classes]
    rows.append(["total", *(sum(dist[s].values()) for s in splits), sum(dist["all"].values())])
    r.table(["class", *splits, "all"], rows, caption=f"{unit} per class and split")
    if len(splits) > 1:
        r.image(
            plots.grouped_bar(
                ds.output_classes,
                {s: list(dist[s].values()) for s in splits},
                title=f"{unit} per class and split",
                ylabel=unit,
            ),
            "per split",
        )


def _size_section(r: Report, ds: Dataset, stats: dict[str, Any]) -> None:
    sizes = stats["sizes"]
    r.section("Image sizes")
    widths: dict[str, list[float]] = {c: [] for c in ds.output_classes}
    heights: dict[str, list[float]] = {c: [] for c in ds.output_classes}
    for rec in ds:
        for c in image_classes(ds, rec):
            widths[ds.output_classes[c]].append(rec.width)
            heights[ds.output_classes[c]].append(rec.height)
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
