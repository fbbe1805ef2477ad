"""Evaluate a trained run on a dataset split: metrics.json, predictions.jsonl, report.html.

:func:`evaluate_run` resolves the data (:func:`~cvpipe.evaluation.selection.select_eval_data`),
loads the run's predictor, and hands both to the evaluator of the run's task
(:meth:`cvpipe.tasks.base.Task.evaluator`): classification metrics for classify and
count (:mod:`cvpipe.evaluation.classify`), COCO metrics for detect
(:mod:`cvpipe.evaluation.detect`). Evaluations stream: peak memory does not grow with
the number of images, and unreadable images are reported (``metrics.json["skipped"]``
and an ``error`` row in predictions.jsonl), never stopping the evaluation.

Example:
    >>> result = evaluate_run("runs/bins")  # doctest: +SKIP
    >>> result.metrics["accuracy"], result.report  # doctest: +SKIP
    (0.41, PosixPath('runs/bins/eval/report.html'))
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cvpipe.evaluation.base import EvalData, EvalResult
from cvpipe.evaluation.selection import select_eval_data
from cvpipe.inference.predictor import BasePredictor
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)


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
        max_mistakes: mistakes shown in a classifier report's grid (most confident first).
        predictor: an already loaded predictor (skips loading the checkpoint); its card's
            task chooses the evaluator.
        selection: already resolved data (from :func:`select_eval_data`); overrides
            ``data`` and ``split``.

    Returns:
        :class:`~cvpipe.evaluation.base.EvalResult`.

    Raises:
        DatasetError, CheckpointError: bad dataset/split or a model that does not fit it.
    """
    run = Path(run)
    sel = selection or select_eval_data(run, data, split)
    pred: Any = predictor or BasePredictor.from_run(run, which=which, device=device)
    evaluator = get_task(pred.card.task).evaluator()
    res = evaluator.evaluate(
        run, pred, sel, which=which, out=out, batch_size=batch_size, workers=workers,
        report=report, max_mistakes=max_mistakes,
    )  # fmt: skip
    _track(run, res)
    return res


def _track(run: Path, res: EvalResult) -> None:
    """Add the evaluation to the run's MLflow run / TensorBoard logs when it was tracked."""
    if (run / "tracking.json").is_file():
        from cvpipe.tracking.hooks import log_evaluation

        log_evaluation(run, res.out_dir, res.metrics)
