"""HTML reports for classifiers and counters: ``cvpipe eval`` (metrics, per-class table,
confusion matrices, reliability diagram, counting, a grid of the most confident
mistakes) and ``cvpipe compare`` (paired statistics, F1 per class, training curves).

Plots are drawn with :mod:`cvpipe.report.plots` (Agg figures, no pyplot state) and
embedded in one self-contained file by :class:`cvpipe.report.Report`.

Example:
    >>> write_eval_report("runs/a/eval/report.html", metrics, mistakes, predictor)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.images import ImageReadError, decode
from cvpipe.report import Report, plots

log = logging.getLogger(__name__)

THUMB = 96


def reliability_png(reliability: dict[str, Any], ece: float | None) -> bytes:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with counts."""
    fig = plots.new_figure(5.6, 4.2)
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    lower = np.asarray(reliability["lower"])
    width = float(lower[1] - lower[0]) if len(lower) > 1 else 1.0
    acc = [a if a is not None else 0.0 for a in reliability["accuracy"]]
    conf = [c if c is not None else 0.0 for c in reliability["confidence"]]
    ax.bar(
        lower, acc, width=width, align="edge", color="#4c72b0", edgecolor="white", label="accuracy"
    )
    ax.bar(
        lower,
        conf,
        width=width,
        align="edge",
        fill=False,
        edgecolor="#cf222e",
        linewidth=1.2,
        label="mean confidence",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.4f})" if ece is not None else "reliability")
    ax.legend(fontsize=8, loc="upper left")
    ax2.bar(lower, reliability["count"], width=width, align="edge", color="gray")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("confidence (top-1 probability)")
    ax2.set_ylabel("images")
    return plots.to_png(fig)


def mistakes_grid_png(mistakes: Sequence[dict[str, Any]], cols: int = 8) -> bytes | None:
    """Thumbnails of mistakes captioned ``true → pred (confidence)``; None if nothing to show."""
    thumbs = []
    for m in mistakes:
        try:
            im = decode(m["path"], "RGB", draft=(THUMB, THUMB), orientation=m.get("orientation"))
        except ImageReadError:
            continue
        im.thumbnail((THUMB, THUMB))
        thumbs.append((np.asarray(im), m))
    if not thumbs:
        return None
    cols = min(cols, len(thumbs))
    rows = (len(thumbs) + cols - 1) // cols
    fig = plots.new_figure(1.3 * cols, 1.45 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(thumbs):
            arr, m = thumbs[k]
            ax.imshow(arr)
            ax.set_title(
                f"{m['true']} → {m['pred']} ({m['confidence']:.2f})", fontsize=7, color="#cf222e"
            )
    return plots.to_png(fig)


def per_class_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    """``[class, precision, recall, F1, support]`` rows, then macro and weighted averages."""
    rows: list[list[Any]] = [
        [name, m["precision"], m["recall"], m["f1"], m["support"]]
        for name, m in metrics["per_class"].items()
    ]
    n = metrics["n"]
    for avg in ("macro", "weighted"):
        a = metrics[avg]
        rows.append([f"{avg} avg", a["precision"], a["recall"], a["f1"], n])
    return rows


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers printed by the CLI and shown as tiles."""
    out: dict[str, Any] = {
        "images": metrics["n"],
        "accuracy": metrics["accuracy"],
        "macro F1": metrics["macro"]["f1"],
    }
    for k, v in (metrics.get("top_k") or {}).items():
        if k != "top_1":
            out[k.replace("_", "-")] = v
    if metrics.get("ece") is not None:
        out["ECE"] = metrics["ece"]
    for key, label in (
        ("mae", "MAE"),
        ("rmse", "RMSE"),
        ("off_by_one_accuracy", "off-by-one acc"),
        ("mean_signed_error", "mean signed error"),
    ):
        if metrics.get(key) is not None:
            out[label] = metrics[key]
    if metrics.get("n_skipped"):
        out["skipped"] = metrics["n_skipped"]
    return out


def write_eval_report(
    path: str | Path, metrics: dict[str, Any], mistakes: Sequence[dict[str, Any]], predictor: Any
) -> Path:
    """Write the evaluation report to ``path``.

    Args:
        path: the HTML file.
        metrics: the dict written to metrics.json.
        mistakes: the most confident mistakes (``path``, ``true``, ``pred``, ``confidence``).
        predictor: the predictor used (for the model name and preprocessing).

    Returns:
        ``path``.
    """
    card = predictor.card
    r = Report(
        f"Evaluation of {Path(metrics['run']).name}",
        subtitle=f"{card.model} ({card.task}) on {metrics['dataset']} [{metrics['split']}], checkpoint {metrics['which']}",
    )
    r.section("Summary").metrics(headline(metrics))
    if metrics.get("notice"):
        r.note(metrics["notice"], level="warning")
    if metrics.get("n_skipped"):
        r.note(
            f"{metrics['n_skipped']} unreadable images were left out of the metrics (listed below)",
            level="warning",
        )
    r.section("Per class").table(
        ["class", "precision", "recall", "F1", "support"], per_class_rows(metrics)
    )
    classes = metrics["confusion_matrix"]["labels"]
    cm = metrics["confusion_matrix"]
    r.section("Confusion matrix")
    r.image(
        plots.heatmap(
            cm["counts"], classes, classes, title="counts", xlabel="predicted", ylabel="true"
        ),
        "rows: true class, columns: predicted class",
    )
    norm = [[round(v, 2) for v in row] for row in cm["normalized"]]
    r.image(
        plots.heatmap(
            norm,
            classes,
            classes,
            title="normalised by true class",
            xlabel="predicted",
            ylabel="true",
        ),
        "each row sums to 1: the diagonal is the per-class recall",
    )
    if metrics.get("reliability"):
        r.section("Calibration").image(
            reliability_png(metrics["reliability"], metrics.get("ece")),
            "expected calibration error over 15 equal-width confidence bins",
        )
    if metrics.get("mae") is not None:
        per = metrics["per_count"]
        r.section("Counting").table(
            ["true count", "images", "MAE", "mean signed error"],
            [[c, v["n"], v["mae"], v["mean_signed_error"]] for c, v in per.items()],
            caption="mean signed error > 0: the model over-counts",
        )
    r.section("Mistakes")
    grid = mistakes_grid_png(mistakes)
    if grid is None:
        r.text("No mistakes to show.")
    else:
        r.image(grid, f"the {len(mistakes)} most confident mistakes: true → predicted (confidence)")
    if metrics.get("skipped"):
        r.section("Skipped images").table(
            ["id", "file", "error"],
            [[s["id"], s["file"], s["error"]] for s in metrics["skipped"]],
            max_rows=200,
        )
    return r.save(path)


def training_curves(
    runs: Sequence[Path], names: Sequence[str]
) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Epoch curves of each run from ``RUN/metrics.jsonl``: metric → series name → (x, y)."""
    from cvpipe.engine.runs import read_metrics

    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = {"loss": {}, "val.accuracy": {}}
    for run, name in zip(runs, names, strict=True):
        try:
            rows = read_metrics(run, kind="epoch")
        except (OSError, ValueError) as exc:
            log.warning("%s: no training curves (%s)", run, exc)
            continue
        for key, target, label in (
            ("train.loss", "loss", f"{name} train"),
            ("val.loss", "loss", f"{name} val"),
            ("val.accuracy", "val.accuracy", name),
        ):
            pts = [
                (float(r["epoch"]), float(r[key]))
                for r in rows
                if r.get(key) is not None and "epoch" in r
            ]
            if pts:
                curves[target][label] = ([p[0] for p in pts], [p[1] for p in pts])
    return curves


def overall_table(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One row per run: accuracy, macro/weighted F1, (counting errors, when the runs were
    scored as counters), and the paired statistics against the baseline (empty for the
    baseline itself)."""
    count = bool(data["runs"]) and "mae" in data["runs"][0]
    headers = ["run", "model", "accuracy", "macro F1", "weighted F1"]
    if count:
        headers += ["MAE", "off-by-one"]
    headers += ["Δ acc", "95% CI", "McNemar p"]
    pairs = {p["other"]: p for p in data["pairs"]}
    rows = []
    for r in data["runs"]:
        row: list[Any] = [
            r["name"],
            r["model"],
            r["accuracy"],
            r["macro"]["f1"],
            r["weighted"]["f1"],
        ]
        if count:
            row += [r.get("mae"), r.get("off_by_one_accuracy")]
        p = pairs.get(r["name"])
        if p is None:
            row += ["baseline", "", ""]
        else:
            row += [
                f"{p['diff']:+.4f}",
                f"[{p['ci_low']:+.4f}, {p['ci_high']:+.4f}]",
                _fmt_p(p["mcnemar"]["p_value"]),
            ]
        rows.append(row)
    return headers, rows


def per_class_table(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Seed 001's "class-wise metrics" side by side: precision, recall, F1 per run."""
    headers = ["class"]
    for r in data["runs"]:
        headers += [f"{r['name']} P", f"{r['name']} R", f"{r['name']} F1"]
    rows: list[list[Any]] = []
    for c in data["classes"]:
        row: list[Any] = [c]
        for r in data["runs"]:
            m = r["per_class"][c]
            row += [round(m["precision"], 3), round(m["recall"], 3), round(m["f1"], 3)]
        rows.append(row)
    acc: list[Any] = ["accuracy"]
    for r in data["runs"]:
        acc += ["", "", round(r["accuracy"], 3)]
    rows.append(acc)
    return headers, rows


def _fmt_p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def write_compare_report(path: str | Path, data: dict[str, Any], runs: Sequence[Path]) -> Path:
    """Write the comparison report (tables, paired statistics, F1 bars, training curves)."""
    from cvpipe.evaluation.compare import compare_report_head

    r = compare_report_head(
        data,
        overall_table(data),
        "Δ acc, its paired bootstrap 95% CI and McNemar's p are against the baseline",
    )
    names = [run["name"] for run in data["runs"]]
    for p in data["pairs"]:
        mc = p["mcnemar"]
        verdict = "significant at 5%" if mc["p_value"] < 0.05 else "not significant at 5%"
        r.text(
            f"{p['other']} vs {p['baseline']}: accuracy {p['accuracy_b']:.4f} vs {p['accuracy_a']:.4f} "
            f"(Δ {p['diff']:+.4f}, 95% CI [{p['ci_low']:+.4f}, {p['ci_high']:+.4f}]); {mc['c']} images only "
            f"{p['other']} gets right, {mc['b']} only {p['baseline']} gets right; McNemar ({mc['method']}) "
            f"p = {mc['p_value']:.4g}, {verdict}."
        )
    headers, rows = per_class_table(data)
    r.section("Per class").table(
        headers, rows, caption="precision (P), recall (R) and F1 per class"
    )
    series = {
        run["name"]: [run["per_class"][c]["f1"] for c in data["classes"]] for run in data["runs"]
    }
    r.image(
        plots.grouped_bar(data["classes"], series, title="F1 per class", ylabel="F1"),
        "F1 per class and run",
    )
    curves = training_curves(runs, names)
    if curves["loss"] or curves["val.accuracy"]:
        r.section("Training curves")
        if curves["loss"]:
            r.image(
                plots.lines(curves["loss"], title="loss", xlabel="epoch", ylabel="loss"),
                "train and val loss per epoch",
            )
        if curves["val.accuracy"]:
            r.image(
                plots.lines(
                    curves["val.accuracy"],
                    title="validation accuracy",
                    xlabel="epoch",
                    ylabel="accuracy",
                ),
                "validation accuracy per epoch",
            )
    return r.save(path)
