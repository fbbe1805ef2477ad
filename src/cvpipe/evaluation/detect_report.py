"""HTML reports for detectors: ``cvpipe eval`` and ``cvpipe compare`` on detect runs.

Sections follow seed 000's analysis: COCO metrics, per-class AP, precision–recall curves
with the operating point, IoU and confidence statistics (count, mean, std, min,
quartiles, max) with histograms, counting from detections, and a grid of predictions
next to the ground truth. Plots come from :mod:`cvpipe.report.plots` figures, tiles from
:mod:`cvpipe.report.gallery`, the page from :class:`cvpipe.report.Report`.

Example:
    >>> write_detect_eval_report("runs/a/eval/report.html", metrics, ds, recs, dets)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.data.manifest import Dataset, Record
from cvpipe.io import atomic_write_bytes
from cvpipe.report import Report, gallery, plots

STAT_ROWS = ("count", "mean", "std", "min", "q25", "median", "q75", "max")
STAT_HEADERS = ["", "count", "mean", "std", "min", "25%", "50%", "75%", "max"]
COCO_ROWS = (
    ("map", "AP @[.50:.95]"), ("map_50", "AP @.50"), ("map_75", "AP @.75"),
    ("map_small", "AP small"), ("map_medium", "AP medium"), ("map_large", "AP large"),
    ("mar_1", "AR @1"), ("mar_10", "AR @10"), ("mar_100", "AR @100"),
    ("mar_small", "AR small"), ("mar_medium", "AR medium"), ("mar_large", "AR large"),
)  # fmt: skip
TILE = 128


def headline(m: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers printed by the CLI and shown as tiles."""
    c = m.get("counting") or {}
    out: dict[str, Any] = {
        "images": m.get("n"),
        "mAP@[.5:.95]": m.get("map"),
        "mAP@.5": m.get("map_50"),
        "mAP@.75": m.get("map_75"),
        "AR@1": m.get("mar_1"),
        "AR@10": m.get("mar_10"),
        "AR@100": m.get("mar_100"),
        "count accuracy": c.get("exact_accuracy"),
        "count MAE": c.get("mae"),
        "count threshold": c.get("threshold"),
    }
    if m.get("n_skipped"):
        out["skipped"] = m["n_skipped"]
    return out


def per_class_rows(m: Mapping[str, Any]) -> list[list[Any]]:
    """``[class, AP, AP50, AP75, AR@100, GT boxes, predictions]`` rows."""
    return [
        [name, v["ap"], v["ap50"], v["ap75"], v["ar_100"], v["num_gt"], v["num_pred"]]
        for name, v in m["per_class"].items()
    ]


def stats_row(label: str, stats: Mapping[str, Any]) -> list[Any]:
    return [label, *[stats.get(k) for k in STAT_ROWS]]


def pr_png(curves: Mapping[str, Mapping[str, Any]], key: str = "precision_50") -> bytes:
    """One panel per class: a line per series (``name → pr_curves() entry``), each
    operating point (best F1 at IoU .5) marked."""
    classes = sorted({c for entry in curves.values() for c in entry})
    n = max(1, len(classes))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig = plots.new_figure(4.2 * cols, 3.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(classes):
            ax.axis("off")
            continue
        cls = classes[k]
        for name, entry in curves.items():
            c = entry.get(cls)
            if not c:
                continue
            pts = [(r, p) for r, p in zip(c["recall"], c[key], strict=True) if p is not None]
            if not pts:
                continue
            label = f"{name} (AP50 {c['ap50']:.3f})" if c.get("ap50") is not None else name
            line = ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=1.5, label=label)
            op = c.get("operating_point")
            if op and key == "precision_50":
                ax.plot([op["recall"]], [op["precision"]], "o", color=line[0].get_color())
                ax.annotate(f"{op['score']:.2f}", (op["recall"], op["precision"]), fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(cls)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    return plots.to_png(fig)


def hist_png(hists: Mapping[str, Mapping[str, Any]], *, title: str, xlabel: str) -> bytes:
    """Overlaid step histograms from ``{"edges", "counts"}`` dicts, one per series."""
    fig = plots.new_figure(5.6, 3.4)
    ax = fig.add_subplot()
    for name, h in hists.items():
        edges = np.asarray(h["edges"], dtype=float)
        counts = np.asarray(h["counts"], dtype=float)
        if len(hists) == 1:
            ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c72b0",
                   edgecolor="white", label=name)  # fmt: skip
        else:
            ax.stairs(counts, edges, label=name, linewidth=1.6)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("predictions")
    ax.grid(True, axis="y", alpha=0.3)
    if hists:
        ax.legend(fontsize=8)
    return plots.to_png(fig)


def grid_png(
    ds: Dataset,
    records: Sequence[Record],
    detections: Sequence[Mapping[str, np.ndarray]],
    threshold: float,
    limit: int = 12,
) -> bytes | None:
    """Ground truth | predictions (score >= threshold) tile pairs, worst counts first."""
    if not records:
        return None
    classes = ds.classes
    errs = [
        abs(int(np.sum(d["scores"] >= threshold)) - len(r.boxes or []))
        for r, d in zip(records, detections, strict=True)
    ]
    order = sorted(range(len(records)), key=lambda i: (-errs[i], i))[:limit]
    tiles = []
    for i in order:
        r, d = records[i], detections[i]
        keep = d["scores"] >= threshold
        path, size = ds.image_path(r), (r.width, r.height)
        tiles.append(gallery.thumbnail(
            path, TILE, boxes=r.boxes or [], box_classes=r.labels or [],
            box_labels=[classes[k] for k in r.labels or []], source_size=size,
            caption=f"truth: {len(r.boxes or [])}", orientation=r.orientation,
        ))  # fmt: skip
        tiles.append(gallery.thumbnail(
            path, TILE, boxes=d["boxes"][keep].tolist(), box_classes=d["labels"][keep].tolist(),
            box_labels=[f"{classes[int(k)]} {s:.2f}" for k, s in zip(d["labels"][keep], d["scores"][keep], strict=True)],
            source_size=size, caption=f"pred: {int(keep.sum())}", orientation=r.orientation,
        ))  # fmt: skip
    return gallery.grid(tiles, columns=8)


def write_detect_eval_report(
    path: str | Path,
    metrics: Mapping[str, Any],
    ds: Dataset,
    records: Sequence[Record],
    detections: Sequence[Mapping[str, np.ndarray]],
) -> Path:
    """Write the evaluation report of a detector.

    Args:
        path: the HTML file.
        metrics: what metrics.json holds.
        ds: the dataset (image paths, class names).
        records, detections: evaluated images and their predictions (same order).

    Returns:
        ``path``.
    """
    what = Path(str(metrics.get("run"))).name if metrics.get("run") else metrics.get("benchmark")
    r = Report(
        f"Evaluation of {what}",
        subtitle=f"{metrics['model']} (detect) on {metrics['dataset']} [{metrics['split']}], "
        f"checkpoint {metrics['which']}",
    )
    r.section("Summary").metrics(headline(metrics))
    if metrics.get("notice"):
        r.note(metrics["notice"], level="warning")
    if metrics.get("n_skipped"):
        r.note(f"{metrics['n_skipped']} unreadable images were left out (listed below)", "warning")
    r.section("COCO metrics").table(
        ["metric", "value"],
        [[label, metrics.get(k)] for k, label in COCO_ROWS],
        caption="mAP over IoU .50:.05:.95; areas small < 32² ≤ medium < 96² ≤ large; None: no such boxes",
    )
    r.section("Per class").table(
        ["class", "AP", "AP50", "AP75", "AR@100", "GT boxes", "predictions"],
        per_class_rows(metrics),
    )
    if metrics.get("pr_curves"):
        r.section("Precision–recall").image(
            pr_png({str(metrics["model"]): metrics["pr_curves"]}),
            "IoU .5, all areas, 100 detections; dot: best-F1 operating point (its score)",
        )
    r.section("IoU statistics")
    ious = metrics["iou_statistics"]
    at = metrics.get("iou_statistics_at_threshold") or {}
    thr = (metrics.get("counting") or {}).get("threshold")
    rows = [stats_row("all predictions", ious["stats"])]
    if at:
        rows.append(stats_row(f"score ≥ {thr}", at["stats"]))
    r.table(STAT_HEADERS, rows, caption="best IoU of each prediction with a same-class true box")
    r.image(hist_png({"IoU": ious["histogram"]}, title="best IoU per prediction", xlabel="IoU"))
    conf = metrics["confidence_statistics"]
    r.section("Confidence statistics").table(STAT_HEADERS, [stats_row("scores", conf["stats"])])
    r.image(hist_png({"score": conf["histogram"]}, title="prediction scores", xlabel="score"))
    _counting_section(r, metrics)
    r.section("Predictions vs ground truth")
    grid = grid_png(ds, records, detections, float(thr if thr is not None else 0.5))
    if grid is None:
        r.text("No image to show.")
    else:
        r.image(
            grid,
            "pairs of tiles: ground truth | predictions at the counting threshold; worst counts first",
        )
    if metrics.get("skipped"):
        r.section("Skipped images").table(
            ["id", "file", "error"],
            [[s["id"], s["file"], s["error"]] for s in metrics["skipped"]],
            max_rows=200,
        )
    return r.save(path)


def _counting_section(r: Report, metrics: Mapping[str, Any]) -> None:
    c = metrics.get("counting") or {}
    if not c:
        return
    r.section("Counting from detections")
    r.text(
        f"Boxes scoring ≥ {c['threshold']} are counted per image (threshold "
        f"{c.get('threshold_source', 'given')}), so this detector compares with counters on "
        "exact-count accuracy and MAE."
    )
    r.metrics({k: c.get(k) for k in ("exact_accuracy", "mae", "rmse", "off_by_one_accuracy",
                                     "mean_signed_error") if k in c})  # fmt: skip
    table = c.get("threshold_table") or []
    if table:
        r.image(
            plots.lines(
                {
                    "MAE": ([t["threshold"] for t in table], [t["mae"] for t in table]),
                    "accuracy": ([t["threshold"] for t in table], [t["accuracy"] for t in table]),
                },
                title="counting on val by score threshold",
                xlabel="score threshold",
            ),
            "the threshold with the lowest MAE on val is used",
        )


def overall_table(data: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One row per model: COCO numbers, counting, and Δ mAP with its 95% CI vs the baseline."""
    headers = ["model", "detector", "mAP", "mAP50", "mAP75", "AR@1", "AR@10", "AR@100",
               "count acc", "count MAE", "Δ mAP", "95% CI", "Δ mAP50", "95% CI (50)"]  # fmt: skip
    pairs = {p["other"]: p for p in data["pairs"]}
    rows = []
    for r in data["runs"]:
        c = r.get("counting") or {}
        row: list[Any] = [r["name"], r["model"], r["map"], r["map_50"], r["map_75"], r["mar_1"],
                          r["mar_10"], r["mar_100"], c.get("exact_accuracy"), c.get("mae")]  # fmt: skip
        p = pairs.get(r["name"])
        if p is None:
            row += ["baseline", "", "", ""]
        else:
            row += [f"{p['diff']:+.4f}", _ci(p["ci_low"], p["ci_high"]), f"{p['diff_50']:+.4f}",
                    _ci(p["ci_low_50"], p["ci_high_50"])]  # fmt: skip
        rows.append(row)
    return headers, rows


def _ci(lo: float | None, hi: float | None) -> str:
    return "n/a" if lo is None or hi is None else f"[{lo:+.4f}, {hi:+.4f}]"


def write_detect_compare_report(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write the detector comparison report (``data``: compare.json's content), plus
    ``pr_curves.png`` and ``iou_distributions.png`` beside it."""
    from cvpipe.evaluation.compare import compare_report_head

    r = compare_report_head(
        data,
        overall_table(data),
        "Δ mAP and its paired bootstrap 95% CI (images resampled) are against the baseline",
    )
    names = [run["name"] for run in data["runs"]]
    for p in data["pairs"]:
        lo, hi = p["ci_low"], p["ci_high"]
        verdict = "n/a" if lo is None else ("excludes 0" if lo > 0 or hi < 0 else "includes 0")
        r.text(
            f"{p['other']} vs {p['baseline']}: mAP {p['map_b']:.4f} vs {p['map_a']:.4f} "
            f"(Δ {p['diff']:+.4f}, 95% CI {_ci(lo, hi)}, {verdict}; "
            f"mAP@.5 Δ {p['diff_50']:+.4f} {_ci(p['ci_low_50'], p['ci_high_50'])}) "
            f"over {p['n_resamples']} resamples of {data['n']} images."
        )
    r.section("Per class AP").table(
        ["class", *[f"{n} AP" for n in names], *[f"{n} AP50" for n in names]],
        [
            [c, *[run["per_class"][c]["ap"] for run in data["runs"]],
             *[run["per_class"][c]["ap50"] for run in data["runs"]]]
            for c in data["classes"]
        ],
    )  # fmt: skip
    out = Path(path).parent
    pr = pr_png({run["name"]: run["pr_curves"] for run in data["runs"]})
    atomic_write_bytes(out / "pr_curves.png", pr)
    r.section("Precision–recall").image(
        pr, "IoU .5 per class, one line per model; dots: best-F1 operating points"
    )
    r.section("IoU distributions").table(
        STAT_HEADERS,
        [stats_row(run["name"], run["iou_statistics"]["stats"]) for run in data["runs"]],
    )
    iou = hist_png({run["name"]: run["iou_statistics"]["histogram"] for run in data["runs"]},
                   title="best IoU per prediction", xlabel="IoU")  # fmt: skip
    atomic_write_bytes(out / "iou_distributions.png", iou)
    r.image(iou)
    r.section("Confidence").table(
        STAT_HEADERS,
        [stats_row(run["name"], run["confidence_statistics"]["stats"]) for run in data["runs"]],
    )
    return r.save(path)
