"""Compare detectors on the same images: side-by-side metrics, PR curves, IoU
distributions, and a paired bootstrap 95% CI of the mAP difference
(:mod:`cvpipe.evaluation.map_bootstrap`).

Entries are run directories (evaluated as ``cvpipe compare`` does for classifiers: their
``RUN/eval`` reused when it matches, else evaluated into ``OUT/evals/NAME``) or eval
folders written by ``cvpipe eval`` (e.g. a benchmark model's ``--out``), so a trained
detector compares with seed 000's pretrained benchmark. Every number is recomputed on
the images every entry could read.

Example:
    >>> res = compare_detectors(["runs/ssd512", "evals/tf_benchmark"], out="cmp")  # doctest: +SKIP
    >>> res.data["pairs"][0]["diff"], res.data["pairs"][0]["ci_low"]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.evaluation.base import CompareResult, EvalData
from cvpipe.evaluation.compare import is_eval_dir, run_names
from cvpipe.evaluation.detect_scoring import CROWD_FLAGS, detection_metrics, ground_truth
from cvpipe.evaluation.evaluate import evaluate_run
from cvpipe.evaluation.map_bootstrap import bootstrap_map_diff, match
from cvpipe.evaluation.selection import iter_predictions, reusable_eval, select_eval_data
from cvpipe.inference.detect import Detections, as_detections
from cvpipe.io import read_json, write_json
from cvpipe.metrics.detection import as_ground_truth, as_predictions

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- entries
@dataclass(slots=True)
class _Entry:
    name: str
    path: Path
    eval_dir: Path
    reused: bool
    meta: dict[str, Any]
    preds: dict[str, Detections]


def _read_preds(eval_dir: Path, classes: list[str]) -> dict[str, Detections]:
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for row in iter_predictions(eval_dir / "predictions.jsonl"):
        if "error" in row:
            continue
        try:
            labels = [index[c] for c in row["labels"]]
        except KeyError as exc:
            raise CheckpointError(
                f"{eval_dir}/predictions.jsonl: unknown class {exc.args[0]!r}"
            ) from None
        out[str(row["id"])] = as_detections(row["boxes"], row["scores"], labels)
    return out


def _entry(
    name: str, path: Path, task: str, sel: EvalData, out: Path, which: str, **kw: Any
) -> _Entry:
    if is_eval_dir(path):
        meta = read_json(path / "metrics.json")
        same = (
            meta.get("dataset") == str(sel.dataset.root.resolve())
            and meta.get("split") == sel.split
        )
        if not same:
            raise CheckpointError(
                f"{path} evaluated {meta.get('dataset')} [{meta.get('split')}], not "
                f"{sel.dataset.root.resolve()} [{sel.split}]; evaluate it on that split first"
            )
        eval_dir, reused = path, True
    else:
        found = reusable_eval(path, sel, which)
        reused = found is not None
        eval_dir = found if found is not None else out / "evals" / name
        if found is None:
            log.info("evaluating %s on %s [%s]", path, sel.dataset.root, sel.split)
            evaluate_run(path, which=which, out=eval_dir, report=False, selection=sel, **kw)
        meta = read_json(eval_dir / "metrics.json")
    if meta.get("task") != task:
        raise CheckpointError(f"{path} is a {meta.get('task')!r} evaluation, not a {task!r} one")
    if list(meta.get("classes") or []) != list(sel.dataset.classes):
        raise CheckpointError(
            f"{path} predicts classes {meta.get('classes')}, the dataset has {sel.dataset.classes}"
        )
    return _Entry(
        name, path, eval_dir, reused, meta, _read_preds(eval_dir, list(sel.dataset.classes))
    )


def _selection(runs: Sequence[str | Path], data: str | Path | None, split: str | None) -> EvalData:
    first = Path(runs[0])
    if data is None and is_eval_dir(first):
        meta = read_json(first / "metrics.json")
        return select_eval_data(first, meta["dataset"], split or meta.get("split"))
    return select_eval_data(first, data, split)


def compare_detectors(
    runs: Sequence[str | Path],
    *,
    task: str = "detect",
    names: Sequence[str] | None = None,
    data: str | Path | None = None,
    split: str | None = None,
    which: str = "best",
    out: str | Path = "compare",
    batch_size: int = 8,
    workers: int = 0,
    device: str = "cpu",
    n_resamples: int = 2000,
    seed: int = 0,
    report: bool = True,
) -> CompareResult:
    """Compare detect runs and eval folders against the first (the baseline).

    Args: as :func:`cvpipe.evaluation.compare.compare_runs`; entries may also be eval
        folders; ``task`` is the task every entry must have been evaluated as.

    Returns:
        :class:`~cvpipe.evaluation.base.CompareResult` (``data`` = compare.json).

    Raises:
        ConfigError: fewer than two entries, or names that do not match.
        CheckpointError: entries on other classes, tasks or data; no common image.
    """
    if len(runs) < 2:
        raise ConfigError("compare needs at least two runs (the first is the baseline)")
    out_dir = Path(out)
    labels = run_names(runs, names)
    sel = _selection(runs, data, split)
    kw = {"batch_size": batch_size, "workers": workers, "device": device}
    entries = [
        _entry(n, Path(r), task, sel, out_dir, which, **kw)
        for n, r in zip(labels, runs, strict=True)
    ]
    classes = list(sel.dataset.classes)
    by_id = {r.id: r for r in sel.records}
    common = [i for i in entries[0].preds if i in by_id and all(i in e.preds for e in entries[1:])]
    if not common:
        raise CheckpointError(
            f"no image of {sel.dataset.root} [{sel.split}] was readable by every model"
        )
    records = [by_id[i] for i in common]
    gt_items = [ground_truth(r) for r in records]
    gt = as_ground_truth(gt_items, len(classes), CROWD_FLAGS)
    per_run, matches = [], []
    for e in entries:
        dets = [e.preds[i] for i in common]
        thr = float((e.meta.get("counting") or {}).get("threshold", 0.5))
        m, _ = detection_metrics(records, dets, classes, thr)
        m["counting"]["threshold_source"] = (e.meta.get("counting") or {}).get("threshold_source")
        matches.append(match(gt, as_predictions(dets, len(classes)), len(classes)))
        per_run.append({
            "name": e.name, "path": str(e.path.resolve()), "model": e.meta.get("model"),
            "eval_dir": str(e.eval_dir), "reused_eval": e.reused,
            "n_skipped": len(e.meta.get("skipped") or []),
            **{k: m[k] for k in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
                                 "mar_1", "mar_10", "mar_100", "per_class", "pr_curves",
                                 "iou_statistics", "confidence_statistics", "counting")},
        })  # fmt: skip
    pairs = [
        {"baseline": entries[0].name, "other": e.name,
         **bootstrap_map_diff(matches[0], mt, len(common), n_resamples=n_resamples, seed=seed)}
        for e, mt in zip(entries[1:], matches[1:], strict=True)
    ]  # fmt: skip
    result = {
        "dataset": str(sel.dataset.root.resolve()), "split": sel.split, "notice": sel.notice,
        "which": which, "task": task, "classes": classes, "n": len(common),
        "baseline": entries[0].name, "runs": per_run, "pairs": pairs,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }  # fmt: skip
    write_json(out_dir / "compare.json", result)
    report_path = None
    if report:
        from cvpipe.evaluation.detect_report import write_detect_compare_report

        report_path = write_detect_compare_report(out_dir / "report.html", result)
    return CompareResult(out_dir, result, report_path)
