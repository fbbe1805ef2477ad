"""Compare classifiers (and counters) on the same images: metrics, paired tests, report.

Each run is evaluated on the same dataset split (its ``RUN/eval/predictions.jsonl`` is
reused when it was made on that exact dataset, split and checkpoint; otherwise the run
is evaluated into ``OUT/evals/NAME``, leaving the run directory untouched). Metrics are
recomputed on the images every run could read, so all columns count the same images.
Every run is compared with the first (the baseline) by McNemar's test and a paired
bootstrap 95% CI of the accuracy difference.

Example:
    >>> res = compare_classifiers(["runs/custom_cnn", "runs/r50"], out="compare")  # doctest: +SKIP
    >>> res.data["pairs"][0]["diff"], res.data["pairs"][0]["mcnemar"]["p_value"]  # doctest: +SKIP
    (0.046, 0.012)
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.evaluation.base import CompareResult, EvalData
from cvpipe.evaluation.compare import run_names
from cvpipe.evaluation.evaluate import evaluate_run
from cvpipe.evaluation.selection import iter_predictions, reusable_eval, select_eval_data
from cvpipe.io import read_json, write_json
from cvpipe.metrics.classification import classification_metrics
from cvpipe.metrics.compare import paired
from cvpipe.metrics.counting import class_counts, counting_metrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _RunPreds:
    name: str
    run: Path
    eval_dir: Path
    reused: bool
    meta: dict[str, Any]
    preds: dict[str, tuple[str, str]]  # id -> (true, pred) for readable images


def _predictions_of(
    name: str, run: Path, sel: EvalData, out: Path, which: str, **eval_kw: Any
) -> _RunPreds:
    eval_dir = reusable_eval(run, sel, which)
    reused = eval_dir is not None
    if eval_dir is None:
        eval_dir = out / "evals" / name
        log.info("evaluating %s on %s [%s]", run, sel.dataset.root, sel.split)
        evaluate_run(run, which=which, out=eval_dir, report=False, selection=sel, **eval_kw)
    else:
        log.info("reusing %s", eval_dir / "predictions.jsonl")
    preds = {
        str(row["id"]): (str(row["true"]), str(row["pred"]))
        for row in iter_predictions(eval_dir / "predictions.jsonl")
        if "error" not in row
    }
    return _RunPreds(name, run, eval_dir, reused, read_json(eval_dir / "metrics.json"), preds)


def compare_classifiers(
    runs: Sequence[str | Path],
    *,
    counts: bool = False,
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
    """Compare classifier (or counter) runs side by side against the first (the baseline).

    Args:
        runs: two or more run directories; the first is the baseline.
        counts: the classes are counts: add MAE, RMSE, off-by-one and signed error.
        names: display names (default: the run folder names).
        data: dataset (default: the first run's training dataset from dataset.lock).
        split: split (default test, else val with a notice).
        which: checkpoint of every run, ``best`` or ``last``.
        out: output folder for compare.json, report.html and fresh evaluations.
        batch_size, workers, device: inference settings for runs evaluated here.
        n_resamples, seed: paired bootstrap settings.
        report: write report.html.

    Returns:
        :class:`CompareResult`.

    Raises:
        ConfigError: fewer than two runs, or names that do not match.
        CheckpointError: runs with different tasks or classes.
    """
    if len(runs) < 2:
        raise ConfigError("compare needs at least two runs (the first is the baseline)")
    out_dir = Path(out)
    labels = run_names(runs, names)
    sel = select_eval_data(runs[0], data, split)
    eval_kw = {"batch_size": batch_size, "workers": workers, "device": device}
    rps = [
        _predictions_of(n, Path(r), sel, out_dir, which, **eval_kw)
        for n, r in zip(labels, runs, strict=True)
    ]
    base = rps[0]
    for rp in rps[1:]:
        if rp.meta.get("classes") != base.meta.get("classes") or rp.meta.get(
            "task"
        ) != base.meta.get("task"):
            raise CheckpointError(
                f"{rp.run} ({rp.meta.get('task')}, classes {rp.meta.get('classes')}) cannot be compared with "
                f"{base.run} ({base.meta.get('task')}, classes {base.meta.get('classes')})"
            )
    classes: list[str] = list(base.meta["classes"])
    task = str(base.meta.get("task"))
    common = [i for i in base.preds if all(i in rp.preds for rp in rps[1:])]
    if not common:
        raise CheckpointError(
            f"no image of {sel.dataset.root} [{sel.split}] was readable by every run"
        )
    index = {c: k for k, c in enumerate(classes)}
    y_true = np.array([index[base.preds[i][0]] for i in common], dtype=np.int64)
    per_run = []
    correct: list[np.ndarray] = []
    for rp in rps:
        y_pred = np.array([index[rp.preds[i][1]] for i in common], dtype=np.int64)
        correct.append(y_pred == y_true)
        m = classification_metrics(y_true, y_pred=y_pred, classes=classes)
        entry: dict[str, Any] = {
            "name": rp.name,
            "run": str(rp.run.resolve()),
            "model": rp.meta.get("model"),
            "eval_dir": str(rp.eval_dir),
            "reused_eval": rp.reused,
            "n_skipped": len(rp.meta.get("skipped") or []),
            **{k: m[k] for k in ("accuracy", "per_class", "macro", "weighted", "confusion_matrix")},
            "ece": rp.meta.get("ece"),
        }
        if counts:
            values = class_counts(classes)
            cm = counting_metrics(values[y_true], values[y_pred], values.tolist())
            entry.update(
                {k: cm[k] for k in ("mae", "rmse", "off_by_one_accuracy", "mean_signed_error")}
            )
        per_run.append(entry)
    pairs = []
    for rp, c in zip(rps[1:], correct[1:], strict=True):
        pc = paired(correct[0], c, n_resamples=n_resamples, seed=seed)
        pairs.append({"baseline": base.name, "other": rp.name, **pc.to_json()})
    result = {
        "dataset": str(sel.dataset.root.resolve()),
        "split": sel.split,
        "notice": sel.notice,
        "which": which,
        "task": task,
        "classes": classes,
        "n": len(common),
        "baseline": base.name,
        "runs": per_run,
        "pairs": pairs,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    write_json(out_dir / "compare.json", result)
    report_path = None
    if report:
        from cvpipe.evaluation.classify_report import write_compare_report

        report_path = write_compare_report(out_dir / "report.html", result, [rp.run for rp in rps])
    return CompareResult(out_dir, result, report_path)
