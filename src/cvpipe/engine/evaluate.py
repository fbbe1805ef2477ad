"""Evaluate a trained run on a dataset split: metrics.json, predictions.jsonl, report.html.

Evaluation streams: each image's probabilities go straight into the streaming metric
evaluators (:mod:`cvpipe.metrics`) and one line of ``predictions.jsonl``, then are
dropped. Only O(C²) counts, a bounded heap of the most confident mistakes (for the
report's grid) and the list of unreadable files are kept, so peak memory does not grow
with the number of images.

Unreadable images are reported (``metrics.json["skipped"]`` and an ``error`` row in
predictions.jsonl) and left out of the metrics; they never stop the evaluation.

Example:
    >>> result = evaluate_run("runs/bins")  # doctest: +SKIP
    >>> result.metrics["accuracy"], result.report  # doctest: +SKIP
    (0.41, PosixPath('runs/bins/eval/report.html'))
"""

from __future__ import annotations

import datetime as _dt
import heapq
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe import progress
from cvpipe.data.manifest import Dataset, Record
from cvpipe.engine.predictor import BasePredictor, Predictor, record_orientations
from cvpipe.errors import CheckpointError, DatasetError
from cvpipe.io import atomic_open, read_json, write_json
from cvpipe.metrics.classification import ClassificationEvaluator
from cvpipe.metrics.counting import CountingEvaluator, class_counts

log = logging.getLogger(__name__)

PROBS_INLINE_MAX = 20  # up to this many classes predictions.jsonl keeps every probability
CHUNK = 512  # images per metrics update


@dataclass(slots=True)
class EvalData:
    """The images an evaluation runs on."""

    dataset: Dataset
    split: str
    records: list[Record]
    notice: str | None = None


@dataclass(slots=True)
class EvalResult:
    """What :func:`evaluate_run` wrote and computed."""

    out_dir: Path
    metrics: dict[str, Any]
    predictions: Path
    report: Path | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)


# -- which data -------------------------------------------------------------------------
def read_lock(run: str | Path) -> dict[str, Any]:
    """``RUN/dataset.lock`` as a dict ({} when the run has none)."""
    path = Path(run) / "dataset.lock"
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path}: unreadable dataset lock ({exc}); pass --data DATASET"
        ) from None
    return data if isinstance(data, dict) else {}


def locked_dataset_path(run: str | Path) -> Path:
    """The dataset a run was trained on, from its dataset.lock.

    A relative path is tried from the current directory, then from the run directory.

    Raises:
        DatasetError: no lock, or its dataset is not found (pass ``--data``).
    """
    lock = read_lock(run)
    raw = lock.get("dataset")
    if not raw:
        raise DatasetError(
            f"{run}: no dataset.lock naming the training dataset; pass --data DATASET"
        )
    p = Path(raw)
    for cand in (p, Path(run) / p):
        if (cand / "dataset.yaml").is_file():
            return cand
    raise DatasetError(f"{run}/dataset.lock: dataset {raw} not found; pass --data DATASET")


def select_eval_data(
    run: str | Path, data: str | Path | None = None, split: str | None = None
) -> EvalData:
    """Resolve the dataset and split to evaluate on.

    Args:
        run: the run directory.
        data: dataset directory; default: the one in ``RUN/dataset.lock``.
        split: split name; default ``test``, falling back to ``val`` (with a notice) when
            the dataset has no test split. A validation split carved from train at
            training time (ids in dataset.lock) is used when the manifest has none.

    Raises:
        DatasetError: missing dataset, or the requested split has no images.
    """
    ds = Dataset.load(data if data is not None else locked_dataset_path(run))
    lock = read_lock(run) if data is None else {}
    locked_splits = lock.get("splits") or {}
    same_manifest = lock.get("manifest_sha256") in (None, ds.manifest_hash())

    def records_of(name: str) -> list[Record]:
        recs = ds.split_records(name)
        ids = locked_splits.get(name) if same_manifest else None
        if not recs and isinstance(ids, list) and ids and name != "train":
            wanted = set(map(str, ids))
            recs = [r for r in ds.records if r.id in wanted]
        return recs

    available = sorted(str(s) for s in ds.splits() if s is not None)
    if split is not None:
        recs = records_of(split)
        if not recs:
            raise DatasetError(
                f"{ds.root}: split {split!r} has no images; splits present: {', '.join(available) or 'none'}"
                " (create them with 'cvpipe split')"
            )
        return EvalData(ds, split, recs)
    recs = records_of("test")
    if recs:
        return EvalData(ds, "test", recs)
    recs = records_of("val")
    if recs:
        notice = f"{ds.root} has no test split; evaluating on the validation split instead"
        log.warning(notice)
        return EvalData(ds, "val", recs, notice)
    raise DatasetError(
        f"{ds.root}: no test or val split to evaluate on (splits present: {', '.join(available) or 'none'}); "
        "create one with 'cvpipe split' or pass --split"
    )


def check_compatible(card: Any, ds: Dataset, run: str | Path) -> None:
    """The run's task and classes must match the dataset's.

    Raises:
        CheckpointError: naming both class lists.
    """
    if card.task != ds.task:
        raise CheckpointError(
            f"{run} is a {card.task!r} model but {ds.root} is a {ds.task!r} dataset"
        )
    if list(card.classes) != list(ds.classes):
        raise CheckpointError(
            f"{run} was trained on classes {list(card.classes)} but {ds.root} has {list(ds.classes)}; "
            "evaluate on a dataset with the same classes in the same order"
        )


# -- the evaluation ----------------------------------------------------------------------
def evaluate_run(
    run: str | Path,
    *,
    data: str | Path | None = None,
    split: str | None = None,
    which: str = "best",
    out: str | Path | None = None,
    batch_size: int = 64,
    workers: int = 0,
    device: str = "cpu",
    report: bool = True,
    max_mistakes: int = 32,
    predictor: BasePredictor | None = None,
    selection: EvalData | None = None,
) -> EvalResult:
    """Evaluate a run and write ``metrics.json``, ``predictions.jsonl`` and ``report.html``.

    Args:
        run: run directory.
        data: dataset directory (default: the training dataset from dataset.lock).
        split: split to evaluate (default test, else val with a notice).
        which: checkpoint, ``best`` or ``last``.
        out: output folder (default ``RUN/eval``).
        batch_size: images per forward pass.
        workers: decoding worker processes.
        device: ``cpu``, ``cuda`` or ``auto``.
        report: also write the HTML report.
        max_mistakes: mistakes shown in the report's grid (most confident first).
        predictor: an already loaded predictor (skips loading the checkpoint); detect
            runs and detection predictors go to
            :func:`cvpipe.engine.detect_evaluate.evaluate_detect_run` (same outputs).
        selection: already resolved data (from :func:`select_eval_data`); overrides
            ``data`` and ``split``.

    Returns:
        :class:`EvalResult`.

    Raises:
        DatasetError, CheckpointError: bad dataset/split or a model that does not fit it.
    """
    run = Path(run)
    sel = selection or select_eval_data(run, data, split)
    pred: Any = predictor or BasePredictor.from_run(run, which=which, device=device)
    if pred.card.task == "detect":
        from cvpipe.engine.detect_evaluate import evaluate_detect_run

        res = evaluate_detect_run(
            run, pred, sel, which=which, out=out, batch_size=batch_size, workers=workers,
            report=report,
        )  # fmt: skip
        _track(run, res)
        return res
    if not isinstance(pred, Predictor):
        raise CheckpointError(f"{run}: evaluation supports classify and count runs only")
    check_compatible(pred.card, sel.dataset, run)
    out_dir = Path(out) if out is not None else run / "eval"
    stream = _Stream(pred, sel, max_mistakes)
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
        from cvpipe.engine.eval_report import write_eval_report

        report_path = write_eval_report(
            out_dir / "report.html", metrics, stream.mistakes_for_report(), pred
        )
    res = EvalResult(out_dir, metrics, out_dir / "predictions.jsonl", report_path, stream.skipped)
    _track(run, res)
    return res


def _track(run: Path, res: EvalResult) -> None:
    """Add the evaluation to the run's MLflow run / TensorBoard logs when it was tracked."""
    if (run / "tracking.json").is_file():
        from cvpipe.tracking.hooks import log_evaluation

        log_evaluation(run, res.out_dir, res.metrics)


class _Stream:
    """Runs the predictor over the records and feeds the streaming evaluators."""

    def __init__(self, pred: Predictor, sel: EvalData, max_mistakes: int) -> None:
        self.pred = pred
        self.sel = sel
        self.classes = list(pred.card.classes)
        self.cls = ClassificationEvaluator(self.classes)
        self.counts = class_counts(self.classes) if pred.card.task == "count" else None
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
        for res in progress.track(results, total=len(paths), desc="eval", unit="img"):
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


# -- reading results back ---------------------------------------------------------------
def iter_predictions(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a ``predictions.jsonl`` written by :func:`evaluate_run`.

    Raises:
        DatasetError: missing file or a line that is not JSON (with its line number).
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: predictions not found; run 'cvpipe eval' first")
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"{p}:{i}: invalid JSON ({exc.msg}); re-run 'cvpipe eval'"
                    ) from None


def reusable_eval(run: str | Path, sel: EvalData, which: str = "best") -> Path | None:
    """``RUN/eval`` when it already holds predictions for this dataset, split and checkpoint.

    Returns:
        The eval folder, or None when it is missing or was made on other data.
    """
    d = Path(run) / "eval"
    if not (d / "metrics.json").is_file() or not (d / "predictions.jsonl").is_file():
        return None
    try:
        m = read_json(d / "metrics.json")
    except (OSError, json.JSONDecodeError):
        return None
    same = (
        m.get("dataset") == str(sel.dataset.root.resolve())
        and m.get("split") == sel.split
        and m.get("manifest_sha256") == sel.dataset.manifest_hash()
        and m.get("which") == which
    )
    ckpt = Path(run) / "checkpoints" / f"{which}.pt"
    if same and ckpt.is_file() and (d / "metrics.json").stat().st_mtime < ckpt.stat().st_mtime:
        return None  # the checkpoint changed after that evaluation
    return d if same else None
