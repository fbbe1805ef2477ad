"""Score classifiers and counters: accuracy, F1, confusion, calibration (and count errors).

:class:`ClassifyEvaluator` is what the classify and count tasks answer with
(:meth:`cvpipe.tasks.base.Task.evaluator`; for count, ``counts=True`` adds MAE, RMSE and
off-by-one accuracy, the classes being counts). Evaluation streams: each image's
probabilities go straight into the streaming metric evaluators (:mod:`cvpipe.metrics`)
and one line of ``predictions.jsonl``, then are dropped. Only O(C²) counts, a bounded
heap of the most confident mistakes (for the report's grid) and the list of unreadable
files are kept, so peak memory does not grow with the number of images.

Comparison is :mod:`cvpipe.evaluation.classify_compare`; the HTML reports are
:mod:`cvpipe.evaluation.classify_report`.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.data.manifest import Record
from cvpipe.errors import CheckpointError
from cvpipe.evaluation.base import CompareResult, EvalData, EvalResult, Evaluator, Table
from cvpipe.evaluation.selection import check_compatible
from cvpipe.inference.classify import Predictor
from cvpipe.inference.predictor import record_orientations
from cvpipe.io import atomic_open, write_json
from cvpipe.metrics.classification import ClassificationEvaluator
from cvpipe.metrics.counting import CountingEvaluator, class_counts
from cvpipe.progress import track

log = logging.getLogger(__name__)

PROBS_INLINE_MAX = 20  # up to this many classes predictions.jsonl keeps every probability
CHUNK = 512  # images per metrics update


class ClassifyEvaluator(Evaluator):
    """Classification scoring (module docstring).

    Args:
        task: the task's name.
        counts: the classes are counts (``"1" .. "5"``): add count errors.
    """

    def __init__(self, task: str, counts: bool = False) -> None:
        super().__init__(task)
        self.counts = counts

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
        pred, sel = predictor, selection
        if not isinstance(pred, Predictor):
            raise CheckpointError(f"{run}: evaluation supports classify and count runs only")
        check_compatible(pred.card, sel.dataset, run)
        out_dir = Path(out) if out is not None else run / "eval"
        stream = _Stream(pred, sel, max_mistakes, self.counts)
        with atomic_open(out_dir / "predictions.jsonl") as f:
            for row in stream.run(batch_size, workers):
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        metrics = stream.metrics()
        metrics.update(
            split=sel.split,
            dataset=str(sel.dataset.root.resolve()),
            manifest_sha256=sel.dataset.manifest_hash(),
            run=str(run.resolve()),
            which=which,
            task=pred.card.task,
            model=pred.card.model,
            classes=list(pred.card.classes),
            created=_dt.datetime.now().isoformat(timespec="seconds"),
            notice=sel.notice,
            n_skipped=len(stream.skipped),
            skipped=stream.skipped,
        )
        write_json(out_dir / "metrics.json", metrics)
        log.info(
            "evaluated %d images of %s/%s: accuracy %.4f",
            metrics["n"],
            sel.dataset.root,
            sel.split,
            metrics["accuracy"],
        )
        report_path = None
        if report:
            from cvpipe.evaluation.classify_report import write_eval_report

            report_path = write_eval_report(
                out_dir / "report.html", metrics, stream.mistakes_for_report(), pred
            )
        return EvalResult(
            out_dir, metrics, out_dir / "predictions.jsonl", report_path, stream.skipped
        )

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
        from cvpipe.evaluation.classify_compare import compare_classifiers

        return compare_classifiers(
            runs, counts=self.counts, names=names, data=data, split=split, which=which,
            out=out, batch_size=batch_size, workers=workers, device=device,
            n_resamples=n_resamples, seed=seed, report=report,
        )  # fmt: skip

    def summary(self, metrics: dict[str, Any]) -> list[Table]:
        from cvpipe.evaluation.classify_report import headline

        m = metrics
        title = f"{m['model']} on {m['dataset']} [{m['split']}], checkpoint {m['which']}"
        rows = [
            [c, v["precision"], v["recall"], v["f1"], v["support"]]
            for c, v in m["per_class"].items()
        ]
        return [
            (["metric", "value"], [list(kv) for kv in headline(m).items()], title),
            (["class", "precision", "recall", "F1", "support"], rows, None),
        ]

    def compare_summary(self, data: dict[str, Any]) -> list[Table]:
        from cvpipe.evaluation.classify_report import overall_table, per_class_table

        d = data
        headers, rows = overall_table(d)
        title = f"{d['n']} images of {d['dataset']} [{d['split']}]"
        pc_headers, pc_rows = per_class_table(d)
        return [
            (headers, rows, title),
            (pc_headers, pc_rows, "per class: precision (P), recall (R), F1"),
        ]


class _Stream:
    """Runs the predictor over the records and feeds the streaming evaluators."""

    def __init__(self, pred: Predictor, sel: EvalData, max_mistakes: int, counts: bool) -> None:
        self.pred = pred
        self.sel = sel
        self.classes = list(pred.card.classes)
        self.cls = ClassificationEvaluator(self.classes)
        self.counts = class_counts(self.classes) if counts else None
        self.cnt = CountingEvaluator(self.counts.tolist()) if self.counts is not None else None
        self.skipped: list[dict[str, Any]] = []
        self.max_mistakes = max_mistakes
        self._mistakes: list[tuple[float, int, str, int, int]] = []  # min-heap on confidence
        self._ys: list[int] = []
        self._ps: list[np.ndarray] = []

    def run(self, batch_size: int, workers: int) -> Iterator[dict[str, Any]]:
        ds, recs = self.sel.dataset, self.sel.records
        paths = [ds.image_path(r) for r in recs]
        results = self.pred.predict_paths(
            paths, batch_size=batch_size, workers=workers, **record_orientations(self.pred, recs)
        )
        for res in track(results, total=len(paths), desc="eval", unit="img"):
            rec = recs[res.index]
            true = ds.class_index(rec)
            if res.error is not None:
                self.skipped.append({"id": rec.id, "file": rec.file, "error": res.error})
                yield {
                    "id": rec.id,
                    "file": rec.file,
                    "true": self.classes[true],
                    "error": res.error,
                }
                continue
            yield self._row(rec, true, res.output, res.index)
        self._flush()

    def _row(self, rec: Record, true: int, probs: np.ndarray, index: int) -> dict[str, Any]:
        p = int(np.argmax(probs))
        conf = float(probs[p])
        self._ys.append(true)
        self._ps.append(probs)
        if len(self._ys) >= CHUNK:
            self._flush()
        if p != true:
            item = (conf, index, rec.file, true, p)
            if len(self._mistakes) < self.max_mistakes:
                heapq.heappush(self._mistakes, item)
            elif self.max_mistakes and conf > self._mistakes[0][0]:
                heapq.heapreplace(self._mistakes, item)
        row: dict[str, Any] = {
            "id": rec.id,
            "file": rec.file,
            "true": self.classes[true],
            "pred": self.classes[p],
            "correct": p == true,
            "confidence": round(conf, 6),
        }
        if len(self.classes) <= PROBS_INLINE_MAX:
            row["probs"] = {c: round(float(v), 6) for c, v in zip(self.classes, probs, strict=True)}
        else:
            top = np.argsort(-probs, kind="stable")[:5]
            row["top5"] = [[self.classes[i], round(float(probs[i]), 6)] for i in top]
        return row

    def _flush(self) -> None:
        if not self._ys:
            return
        y = np.asarray(self._ys, dtype=np.int64)
        probs = np.stack(self._ps)
        self.cls.process(y, probs)
        if self.cnt is not None and self.counts is not None:
            self.cnt.process(self.counts[y], self.counts[probs.argmax(axis=1)])
        self._ys, self._ps = [], []

    def metrics(self) -> dict[str, Any]:
        m = self.cls.evaluate()
        if self.cnt is not None:
            m.update(self.cnt.evaluate())
        return m

    def mistakes_for_report(self) -> list[dict[str, Any]]:
        ds = self.sel.dataset
        return [
            {
                "path": ds.image_root / file,
                "file": file,
                "true": self.classes[t],
                "pred": self.classes[p],
                "confidence": c,
                "orientation": self.sel.records[i].orientation,  # shown as the model saw it
            }
            for c, i, file, t, p in sorted(self._mistakes, reverse=True)
        ]
