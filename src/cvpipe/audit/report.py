"""``report.html`` of an audit: a summary, then image grids per finding, so a person can
check each finding by eye (self-contained: :class:`cvpipe.report.Report`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvpipe.report import Report, plots
from cvpipe.report.gallery import grid, thumbnail
from cvpipe.tasks.registry import get_task

if TYPE_CHECKING:
    from cvpipe.audit.scan import AuditResult

TILE = 128
MAX_GROUPS = 60


def _split(s: str | None) -> str:
    return s if s is not None else "-"


def _duplicates(r: Report, res: AuditResult) -> None:
    ds, recs = res.dataset, res.records
    s = res.summary
    r.section("Near-duplicates and split leaks")
    r.metrics(
        {"groups": s["duplicate_groups"], "byte-identical": s["identical_groups"],
         "near-identical": s["near_duplicate_groups"], "leak groups": s["leak_groups"],
         "cross-split pairs": s["cross_split_pairs"], "conflicting labels": s["conflicting_label_groups"]}
    )  # fmt: skip
    r.text(
        f"Cosine similarity of {res.embeddings.model} embeddings at "
        f"{res.config.duplicates.input_size} px >= {res.config.duplicates.threshold} "
        "(exact nearest neighbours), plus byte-identical "
        "files. A leak group spans splits: its test/val images were seen in training, so "
        "their scores are optimistic. Each row is one group; tiles show split and label."
    )
    if s["leak_groups"]:
        r.note(f"{s['leak_groups']} groups cross split boundaries", level="warning")
    for k, g in enumerate(res.groups[:MAX_GROUPS]):
        tiles = [
            thumbnail(
                ds.image_path(recs[i]), TILE, caption=f"{_split(recs[i].split)} {g.labels[n]}"
            )
            for n, i in enumerate(g.members[:8])
        ]
        flags = [f for f, on in (("LEAK", g.leak), ("LABELS DIFFER", g.conflict)) if on]
        kind = "identical bytes" if g.identical else f"similarity >= {g.similarity:.3f}"
        files = ", ".join(recs[i].file for i in g.members[:8])
        r.image(
            grid(tiles, columns=8),
            caption=f"group {k + 1} ({kind}{'; ' + ', '.join(flags) if flags else ''}): {files}",
        )
    if len(res.groups) > MAX_GROUPS:
        r.note(f"{len(res.groups) - MAX_GROUPS} more groups in audit.json")


def _labels(r: Report, res: AuditResult) -> None:
    ds, recs = res.dataset, res.records
    classes = ds.output_classes  # what the labels (class_index) index
    issues = res.label_issues
    r.section("Likely label errors")
    r.text(
        "Confident learning (cleanlab) on out-of-sample probabilities "
        f"({res.summary.get('probabilities', 'k-fold')}); ranked, most likely wrong first. "
        "Tiles: given label -> suggested label."
    )
    if not issues:
        r.note("no likely label errors", level="ok")
        return
    shown = issues[: res.config.labels.max_listed]
    tiles = [
        thumbnail(
            ds.image_path(recs[t.index]),
            TILE,
            caption=f"{classes[t.given]}->{classes[t.suggested]}",
        )
        for t in shown
    ]
    r.image(grid(tiles, columns=8), caption=f"{len(shown)} of {len(issues)} label issues")
    r.table(
        ["rank", "file", "split", "given", "suggested", "quality", "p(suggested)", "source"],
        [[k + 1, recs[t.index].file, _split(recs[t.index].split), classes[t.given],
          classes[t.suggested], t.quality, t.p_suggested, t.source] for k, t in enumerate(issues)],
        max_rows=200,
    )  # fmt: skip


def _outliers(r: Report, res: AuditResult) -> None:
    ds, recs = res.dataset, res.records
    r.section("Outliers")
    r.text(
        "Images far from every class centre of the embedding space (robust z-score of the "
        f"cosine distance to the nearest centre >= {res.config.outliers.z})."
    )
    if not res.outliers:
        r.note("no outliers", level="ok")
        return
    shown = res.outliers[: res.config.outliers.max_listed]
    tiles = [thumbnail(ds.image_path(recs[o.index]), TILE, caption=f"z={o.z:.1f}") for o in shown]
    r.image(grid(tiles, columns=8), caption=", ".join(recs[o.index].file for o in shown))


def _shortcut(r: Report, res: AuditResult) -> None:
    sc = res.shortcut
    if sc is None:
        return
    ds, recs = res.dataset, res.records
    r.section("Image-size shortcut")
    r.metrics({"balanced accuracy from size alone": sc.balanced_accuracy, "chance": sc.chance})
    if sc.flagged:
        r.note(
            "image size alone predicts the class: a model can learn this cue instead of the "
            "content (upsampling blur, JPEG block scale, padding survive resizing); check "
            "that test images come from the same source, or resize/re-encode every class alike",
            level="warning",
        )
    else:
        r.note("image size does not predict the class", level="ok")
    for c, v in sc.exclusive.items():
        r.note(
            f"{v['images']} {c} images ({100 * v['share']:.1f}%): {v['rule']}",
            level="warning" if sc.flagged else "info",
        )
    r.table(
        ["class", "images", "width min", "width median", "width max", "height min", "height median", "height max"],
        [[c, v["images"], v["width_min"], v["width_median"], v["width_max"], v["height_min"],
          v["height_median"], v["height_max"]] for c, v in sc.per_class.items()],
    )  # fmt: skip
    pts = {
        name: ([float(x.width) for x in recs if ds.class_index(x) == c],
               [float(x.height) for x in recs if ds.class_index(x) == c])
        for c, name in enumerate(ds.output_classes)
    }  # fmt: skip
    r.image(
        plots.scatter(pts, title="image size per class", xlabel="width (px)", ylabel="height (px)"),
        caption="each point is an image",
    )


def _boxes(r: Report, res: AuditResult) -> None:
    if res.run is None or get_task(res.dataset.task).one_class_per_image:
        return
    ds, recs = res.dataset, res.records
    r.section("Boxes the detector disagrees with")
    r.text(
        f"Run {res.run}. missing: a detection (score >= {res.config.detection.score}) on no "
        "labelled box; spurious: a labelled box no detection of its class supports; class: "
        "a confident detection on a box labelled with another class. Red boxes: the disputed ones."
    )
    for kind in ("missing", "spurious", "class"):
        found = [b for b in res.boxes if b.kind == kind][: res.config.detection.max_listed]
        if not found:
            continue
        tiles = [
            thumbnail(ds.image_path(recs[b.index]), TILE, boxes=[b.box], box_labels=[ds.classes[b.label]],
                      box_classes=[0], source_size=(recs[b.index].width, recs[b.index].height),
                      caption=f"{kind} {b.score:.2f}")
            for b in found
        ]  # fmt: skip
        r.image(grid(tiles, columns=8), caption=f"{kind}: {len(found)} shown")


def write_report(res: AuditResult, path: Path) -> Path:
    """Render the audit's HTML report to ``path``."""
    s = res.summary
    r = Report(
        f"Audit of {res.dataset.root}",
        subtitle=f"{s['images']} images, task {res.dataset.task}, embeddings {res.embeddings.model}",
    )
    r.section("Summary").metrics(
        {"images": s["images"], "duplicate groups": s["duplicate_groups"], "leak groups": s["leak_groups"],
         "cross-split pairs": s["cross_split_pairs"], "label issues": s["label_issues"],
         "outliers": s["outliers"], "size shortcut": s["size_shortcut"]}
    )  # fmt: skip
    one_class = get_task(res.dataset.task).one_class_per_image
    if not one_class and res.run is not None:
        r.metrics({"box disagreements": s["box_disagreements"]})
    if s["unreadable"]:
        r.note(f"{s['unreadable']} images could not be read (see audit.json)", level="warning")
    _duplicates(r, res)
    if one_class:
        _labels(r, res)
    _outliers(r, res)
    _shortcut(r, res)
    _boxes(r, res)
    return r.save(path)
