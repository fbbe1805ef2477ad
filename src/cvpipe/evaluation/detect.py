"""Evaluate a detector on a dataset split: COCO metrics, seed 000's analysis, counting.

:class:`DetectEvaluator` is what the detect task answers with
(:meth:`cvpipe.tasks.base.Task.evaluator`). Works for any detection predictor
(:mod:`cvpipe.inference.detect`): a trained run's, or a benchmark model evaluated without
training (:mod:`cvpipe.evaluation.external`), and writes the same files for both:

- ``metrics.json``: the COCO numbers (``map`` = mAP@[.5:.95], ``map_50``, ``map_75``,
  ``map_small/medium/large``, ``mar_1/10/100``, ``mar_small/medium/large``,
  ``per_class`` AP/AP50/AP75/AR@100), ``iou_statistics`` (best IoU per prediction:
  count, mean, std, min, quartiles, max + histogram; over all predictions, and
  ``iou_statistics_at_threshold`` over those kept for counting), ``confidence_statistics``,
  ``pr_curves`` (per class, with the best-F1 operating point), and ``counting``: boxes
  scoring at least a threshold chosen on the validation split are counted per image and
  scored like a counter (``count_accuracy``, ``mae``, ``rmse``, ...), so detectors and
  counters compare on one number;
- ``predictions.jsonl``: per image ``id``, ``file``, ``width``, ``height``, ``boxes``
  (xyxy pixels), ``scores``, ``labels`` (class names), ``true_count``, ``pred_count``;
  an unreadable image gets an ``error`` row and is left out of the metrics;
- ``report.html`` (:mod:`cvpipe.evaluation.detect_report`).

Comparison is :mod:`cvpipe.evaluation.detect_compare`.

Example:
    >>> res = evaluate_run("runs/planes")  # dispatches here for detect runs  # doctest: +SKIP
    >>> res.metrics["map"], res.metrics["counting"]["count_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.data.manifest import Dataset, Record
from cvpipe.errors import DatasetError
from cvpipe.evaluation.base import CompareResult, EvalData, EvalResult, Evaluator, Table
from cvpipe.evaluation.detect_scoring import detection_metrics, ground_truth
from cvpipe.evaluation.selection import check_compatible, read_lock, val_records
from cvpipe.inference.detect import Detections
from cvpipe.inference.predictor import record_orientations
from cvpipe.io import atomic_open, write_json
from cvpipe.metrics.detection_analysis import choose_count_threshold
from cvpipe.progress import track

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Predicted:
    """Records that could be read, their detections, and the unreadable ones."""

    records: list[Record]
    detections: list[Detections]
    skipped: list[dict[str, Any]]


def predict_records(
    predictor: Any,
    ds: Dataset,
    records: list[Record],
    *,
    batch_size: int = 8,
    workers: int = 0,
    desc: str = "eval",
) -> Predicted:
    """Run ``predictor`` over ``records`` (unreadable images are listed, not raised)."""
    paths = [ds.image_path(r) for r in records]
    kept: list[Record] = []
    dets: list[Detections] = []
    skipped: list[dict[str, Any]] = []
    results = predictor.predict_paths(
        paths, batch_size=batch_size, workers=workers, **record_orientations(predictor, records)
    )
    for res in track(results, total=len(paths), desc=desc, unit="img"):
        rec = records[res.index]
        if res.error is not None:
            skipped.append({"id": rec.id, "file": rec.file, "error": res.error})
        else:
            kept.append(rec)
            dets.append(res.output)
    return Predicted(kept, dets, skipped)


def count_threshold(
    predictor: Any,
    sel: EvalData,
    evaluated: Predicted,
    *,
    given: float | None = None,
    lock: dict[str, Any] | None = None,
    batch_size: int = 8,
    workers: int = 0,
) -> tuple[float, str, list[dict[str, float]]]:
    """The score threshold for counting, where it came from, and the val table.

    Order: ``given`` → the model card's ``thresholds.count_score`` (chosen on val when
    the run was trained) → chosen here on the validation split → when the evaluated split
    is val itself or there is no val split, chosen on the evaluated split (optimistic;
    said so in the source).
    """
    classes = list(predictor.card.classes)
    if given is not None:
        return float(given), "given", []
    card_thr = (predictor.card.extra or {}).get("thresholds", {}).get("count_score")
    if card_thr is not None:
        return float(card_thr), "model card (chosen on val at training)", []
    if sel.split != "val":
        recs = val_records(sel.dataset, lock or {})
        if recs:
            val = predict_records(
                predictor, sel.dataset, recs, batch_size=batch_size, workers=workers, desc="val"
            )
            if val.records:
                ct = choose_count_threshold(
                    [ground_truth(r) for r in val.records], val.detections, num_classes=len(classes)
                )
                return ct.threshold, f"chosen on val ({len(val.records)} images)", ct.table
    ct = choose_count_threshold(
        [ground_truth(r) for r in evaluated.records], evaluated.detections, num_classes=len(classes)
    )
    where = "val" if sel.split == "val" else f"{sel.split} (no val split: optimistic)"
    return ct.threshold, f"chosen on {where}", ct.table


def _row(rec: Record, det: Detections, classes: list[str], thr: float) -> dict[str, Any]:
    return {
        "id": rec.id,
        "file": rec.file,
        "width": rec.width,
        "height": rec.height,
        "boxes": [[round(float(v), 2) for v in b] for b in det["boxes"]],
        "scores": [round(float(s), 6) for s in det["scores"]],
        "labels": [classes[int(k)] for k in det["labels"]],
        "true_count": len(rec.boxes or []),
        "pred_count": int(np.sum(det["scores"] >= thr)),
    }


def evaluate_detector(
    predictor: Any,
    sel: EvalData,
    *,
    out_dir: str | Path,
    source: dict[str, Any],
    which: str = "best",
    batch_size: int = 8,
    workers: int = 0,
    report: bool = True,
    count_thresh: float | None = None,
    lock: dict[str, Any] | None = None,
) -> EvalResult:
    """Evaluate any detection predictor on ``sel`` and write the eval outputs.

    Args:
        predictor: a detection predictor (``card``, ``predict_paths``).
        sel: dataset and split (:func:`cvpipe.evaluation.selection.select_eval_data`).
        out_dir: where metrics.json, predictions.jsonl and report.html go.
        source: what was evaluated, merged into metrics.json (``run`` or ``benchmark``).
        which: checkpoint name recorded in metrics.json.
        batch_size, workers: inference settings.
        report: write report.html.
        count_thresh: counting threshold (default: chosen on val, see
            :func:`count_threshold`).
        lock: the run's dataset.lock (for a validation split carved at training).

    Returns:
        :class:`~cvpipe.evaluation.base.EvalResult`.

    Raises:
        CheckpointError: the model's classes or task do not fit the dataset.
        DatasetError: no image of the split could be read.
    """
    out = Path(out_dir)
    classes = list(predictor.card.classes)
    check_compatible(predictor.card, sel.dataset, str(source.get("run") or source.get("benchmark")))
    got = predict_records(
        predictor, sel.dataset, sel.records, batch_size=batch_size, workers=workers
    )
    if not got.records:
        raise DatasetError(
            f"{sel.dataset.root} [{sel.split}]: none of the {len(sel.records)} images could be read"
        )
    thr, thr_source, table = count_threshold(
        predictor, sel, got, given=count_thresh, lock=lock, batch_size=batch_size, workers=workers
    )
    metrics, _ = detection_metrics(got.records, got.detections, classes, thr)
    metrics["counting"].update(threshold_source=thr_source, threshold_table=table)
    with atomic_open(out / "predictions.jsonl") as f:
        for rec, det in zip(got.records, got.detections, strict=True):
            f.write(json.dumps(_row(rec, det, classes, thr), separators=(",", ":")) + "\n")
        for s in got.skipped:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    settings = getattr(predictor, "postprocess_settings", None)
    metrics.update(
        source,
        split=sel.split,
        dataset=str(sel.dataset.root.resolve()),
        manifest_sha256=sel.dataset.manifest_hash(),
        which=which,
        task=predictor.card.task,
        model=predictor.card.model,
        classes=classes,
        postprocess=settings() if callable(settings) else None,
        created=_dt.datetime.now().isoformat(timespec="seconds"),
        notice=sel.notice,
        n_skipped=len(got.skipped),
        skipped=got.skipped,
    )
    write_json(out / "metrics.json", metrics)
    log.info(
        "evaluated %d images of %s/%s: mAP %.4f, mAP50 %.4f",
        len(got.records), sel.dataset.root, sel.split, metrics["map"] or 0.0,
        metrics["map_50"] or 0.0,
    )  # fmt: skip
    report_path = None
    if report:
        from cvpipe.evaluation.detect_report import write_detect_eval_report

        report_path = write_detect_eval_report(
            out / "report.html", metrics, sel.dataset, got.records, got.detections
        )
    return EvalResult(out, metrics, out / "predictions.jsonl", report_path, got.skipped)


def evaluate_detect_run(
    run: str | Path,
    predictor: Any,
    sel: EvalData,
    *,
    which: str = "best",
    out: str | Path | None = None,
    batch_size: int = 8,
    workers: int = 0,
    report: bool = True,
) -> EvalResult:
    """:func:`cvpipe.evaluation.evaluate.evaluate_run` for a detect run (same outputs, RUN/eval)."""
    run = Path(run)
    return evaluate_detector(
        predictor,
        sel,
        out_dir=Path(out) if out is not None else run / "eval",
        source={"run": str(run.resolve())},
        which=which,
        batch_size=batch_size,
        workers=workers,
        report=report,
        lock=read_lock(run),
    )


class DetectEvaluator(Evaluator):
    """Detection scoring: COCO metrics, seed 000's analysis, counting (module docstring)."""

    def evaluate(
        self,
        run: Path,
        predictor: Any,
        selection: EvalData,
        *,
        which: str = "best",
        out: str | Path | None = None,
        batch_size: int = 64,
        workers: int = 0,
        report: bool = True,
        max_mistakes: int = 32,
    ) -> EvalResult:
        return evaluate_detect_run(
            run, predictor, selection, which=which, out=out, batch_size=batch_size,
            workers=workers, report=report,
        )  # fmt: skip

    def compare(
        self,
        runs: Sequence[str | Path],
        *,
        names: Sequence[str] | None = None,
        data: str | Path | None = None,
        split: str | None = None,
        which: str = "best",
        out: str | Path = "compare",
        batch_size: int = 64,
        workers: int = 0,
        device: str = "cpu",
        n_resamples: int = 2000,
        seed: int = 0,
        report: bool = True,
    ) -> CompareResult:
        from cvpipe.evaluation.detect_compare import compare_detectors

        return compare_detectors(
            runs, task=self.task, names=names, data=data, split=split, which=which, out=out,
            batch_size=batch_size, workers=workers, device=device, n_resamples=n_resamples,
            seed=seed, report=report,
        )  # fmt: skip

    def summary(self, metrics: dict[str, Any]) -> list[Table]:
        from cvpipe.evaluation.detect_report import headline, per_class_rows

        m = metrics
        what = m.get("benchmark") or m.get("run")
        title = f"{m['model']} ({what}) on {m['dataset']} [{m['split']}]"
        return [
            (["metric", "value"], [list(kv) for kv in headline(m).items()], title),
            (["class", "AP", "AP50", "AP75", "AR@100", "GT", "pred"], per_class_rows(m), None),
        ]

    def compare_summary(self, data: dict[str, Any]) -> list[Table]:
        from cvpipe.evaluation.detect_report import overall_table

        d = data
        headers, rows = overall_table(d)
        return [(headers, rows, f"{d['n']} images of {d['dataset']} [{d['split']}]")]
