"""Compare detectors on the same images: side-by-side metrics, PR curves, IoU
distributions, and a paired bootstrap 95% CI of the mAP difference.

Entries are run directories (evaluated as ``cvpipe compare`` does for classifiers: their
``RUN/eval`` reused when it matches, else evaluated into ``OUT/evals/NAME``) or eval
folders written by ``cvpipe eval`` (e.g. a benchmark model's ``--out``), so a trained
detector compares with seed 000's pretrained benchmark. Every number is recomputed on
the images every entry could read.

The bootstrap resamples *images* with replacement (the same draw for every model),
recomputes mAP@[.5:.95] and mAP@.5 of each model on the resample and takes percentiles
of the difference. Recomputing COCO's evaluation thousands of times would be slow, so
the per-image matching (COCO's greedy matching per class and IoU threshold, crowd boxes
ignored, 100 detections per image) is done once, and a resample only re-weights images
in COCO's accumulation: a vectorised cumulative sum over detections sorted by score.
With all weights 1 this is COCO's mAP (tested against :mod:`cvpipe.metrics.detection`).

Example:
    >>> res = compare_detectors(["runs/ssd512", "evals/tf_benchmark"], out="cmp")  # doctest: +SKIP
    >>> res.data["pairs"][0]["diff"], res.data["pairs"][0]["ci_low"]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.engine.detect_evaluate import CROWD_FLAGS, detection_metrics, ground_truth
from cvpipe.engine.detect_predictor import Detections, as_detections
from cvpipe.engine.evaluate import (
    EvalData,
    evaluate_run,
    iter_predictions,
    reusable_eval,
    select_eval_data,
)
from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.io import read_json, write_json
from cvpipe.metrics.detection import ImageBoxes, as_ground_truth, as_predictions
from cvpipe.metrics.detection_analysis import box_iou

log = logging.getLogger(__name__)

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = 100


# ---------------------------------------------------------------------- matching + weighted AP
@dataclass(slots=True)
class ClassMatches:
    """One class's detections over all images, in COCO's accumulation order.

    Attributes:
        image: image index of each detection [D].
        tp, ignore: [T, D] matched to a true box / to a crowd box, per IoU threshold.
        npos: non-crowd true boxes of the class per image [I].
    """

    image: np.ndarray
    tp: np.ndarray
    ignore: np.ndarray
    npos: np.ndarray


def _match_one(
    g_boxes: np.ndarray, g_crowd: np.ndarray, d_boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching of score-sorted detections to true boxes, per threshold."""
    T, D = len(IOU_THRESHOLDS), len(d_boxes)
    tp = np.zeros((T, D), dtype=bool)
    ign = np.zeros((T, D), dtype=bool)
    if not len(g_boxes) or not D:
        return tp, ign
    order = np.argsort(g_crowd, kind="mergesort")  # non-crowd first
    g_boxes, g_crowd = g_boxes[order], g_crowd[order]
    ious = box_iou(d_boxes, g_boxes)
    if g_crowd.any():  # crowd: intersection over the detection's area
        d_area = np.clip(d_boxes[:, 2] - d_boxes[:, 0], 0, None) * np.clip(
            d_boxes[:, 3] - d_boxes[:, 1], 0, None
        )
        lt = np.maximum(d_boxes[:, None, :2], g_boxes[None, g_crowd, :2])
        rb = np.minimum(d_boxes[:, None, 2:], g_boxes[None, g_crowd, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
        ious[:, g_crowd] = np.divide(
            inter, d_area[:, None], out=np.zeros_like(inter), where=d_area[:, None] > 0
        )
    for t, thr in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(g_boxes), dtype=bool)
        for d in range(D):
            best, m = min(thr, 1 - 1e-10), -1
            for g in range(len(g_boxes)):
                if taken[g] and not g_crowd[g]:
                    continue
                if m > -1 and not g_crowd[m] and g_crowd[g]:
                    break
                if ious[d, g] < best:
                    continue
                best, m = ious[d, g], g
            if m == -1:
                continue
            ign[t, d] = g_crowd[m]
            tp[t, d] = True
            taken[m] = True
    return tp, ign


def match(
    gt: Sequence[ImageBoxes], preds: Sequence[ImageBoxes], num_classes: int
) -> list[ClassMatches]:
    """Per-class :class:`ClassMatches` (COCO protocol, all areas, 100 detections)."""
    out = []
    for k in range(num_classes):
        images, scores, tps, igns = [], [], [], []
        npos = np.zeros(len(gt), dtype=np.float64)
        for i, (g, p) in enumerate(zip(gt, preds, strict=True)):
            gm = g.labels == k
            npos[i] = np.sum(gm & ~g.crowd)
            pm = np.flatnonzero(p.labels == k)
            if not len(pm):
                continue
            pm = pm[np.argsort(-p.scores[pm], kind="mergesort")][:MAX_DETS]
            tp, ign = _match_one(g.boxes[gm], g.crowd[gm], p.boxes[pm])
            images.append(np.full(len(pm), i))
            scores.append(p.scores[pm])
            tps.append(tp)
            igns.append(ign)
        if not images:
            out.append(
                ClassMatches(
                    np.zeros(0, np.int64), np.zeros((10, 0), bool), np.zeros((10, 0), bool), npos
                )
            )
            continue
        s = np.concatenate(scores)
        order = np.argsort(-s, kind="mergesort")
        out.append(ClassMatches(
            np.concatenate(images)[order], np.concatenate(tps, axis=1)[:, order],
            np.concatenate(igns, axis=1)[:, order], npos,
        ))  # fmt: skip
    return out


def weighted_map(
    matches: Sequence[ClassMatches], weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """mAP@[.5:.95] and mAP@.5 for each row of image weights ``[B, I]`` (NaN: no true box).

    A weight is how many times an image appears in a bootstrap resample.
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    B = w.shape[0]
    sum_all, n_all = np.zeros(B), np.zeros(B)
    sum_50, n_50 = np.zeros(B), np.zeros(B)
    offsets = 2.0 * np.arange(B)[:, None]
    for cm in matches:
        npig = w @ cm.npos  # [B]
        valid = npig > 0
        if not valid.any():
            continue
        D = len(cm.image)
        W = w[:, cm.image]  # [B, D]
        for t in range(len(IOU_THRESHOLDS)):
            if D == 0:
                ap = np.zeros(B)
            else:
                keep = ~cm.ignore[t]
                tp = np.cumsum(W * (cm.tp[t] & keep), axis=1)
                fp = np.cumsum(W * (~cm.tp[t] & keep), axis=1)
                rc = tp / np.where(valid, npig, 1.0)[:, None]
                pr = tp / (tp + fp + np.spacing(1))
                env = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                flat = (rc + offsets).ravel()
                q = (RECALL_THRESHOLDS[None, :] + offsets).ravel()
                idx = (
                    np.searchsorted(flat, q, side="left").reshape(B, -1) - np.arange(B)[:, None] * D
                )
                inside = idx < D
                vals = np.where(inside, env[np.arange(B)[:, None], np.minimum(idx, D - 1)], 0.0)
                ap = vals.mean(axis=1)
            sum_all += np.where(valid, ap, 0.0)
            n_all += valid
            if t == 0:
                sum_50 += np.where(valid, ap, 0.0)
                n_50 += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        return sum_all / n_all, sum_50 / n_50


def bootstrap_map_diff(
    a: Sequence[ClassMatches],
    b: Sequence[ClassMatches],
    n_images: int,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
) -> dict[str, Any]:
    """Paired bootstrap of mAP(b) − mAP(a) over images resampled with replacement.

    Returns:
        ``map_a``, ``map_b``, ``diff``, ``ci_low``, ``ci_high`` (mAP@[.5:.95]) and the same
        with a ``_50`` suffix for mAP@.5, ``n_resamples``, ``confidence``, ``seed``.

    Raises:
        ConfigError: no images, or confidence outside (0, 1).
    """
    if n_images < 1:
        raise ConfigError("the mAP bootstrap needs at least one image")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    ones = np.ones((1, n_images))
    ma, ma50 = weighted_map(a, ones)
    mb, mb50 = weighted_map(b, ones)
    rng = np.random.default_rng(seed)
    diffs, diffs50 = [], []
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        w = rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=m).astype(np.float64)
        xa, xa50 = weighted_map(a, w)
        xb, xb50 = weighted_map(b, w)
        diffs.append(xb - xa)
        diffs50.append(xb50 - xa50)
    d, d50 = np.concatenate(diffs), np.concatenate(diffs50)
    alpha = (1 - confidence) / 2

    def ci(x: np.ndarray) -> tuple[float | None, float | None]:
        x = x[np.isfinite(x)]
        if not x.size:
            return None, None
        lo, hi = np.quantile(x, [alpha, 1 - alpha])
        return float(lo), float(hi)

    lo, hi = ci(d)
    lo50, hi50 = ci(d50)
    f = float  # noqa: E731 - short alias for the dict below
    return {
        "map_a": f(ma[0]), "map_b": f(mb[0]), "diff": f(mb[0] - ma[0]), "ci_low": lo, "ci_high": hi,
        "map_50_a": f(ma50[0]), "map_50_b": f(mb50[0]), "diff_50": f(mb50[0] - ma50[0]),
        "ci_low_50": lo50, "ci_high_50": hi50,
        "n_resamples": int(n_resamples), "confidence": confidence, "seed": seed,
    }  # fmt: skip


# ---------------------------------------------------------------------- entries
@dataclass(slots=True)
class _Entry:
    name: str
    path: Path
    eval_dir: Path
    reused: bool
    meta: dict[str, Any]
    preds: dict[str, Detections]


def is_eval_dir(path: str | Path) -> bool:
    """An eval output folder (metrics.json + predictions.jsonl, no model card)."""
    p = Path(path)
    return (
        (p / "metrics.json").is_file()
        and (p / "predictions.jsonl").is_file()
        and not (p / "model_card.json").is_file()
    )


def task_of(path: str | Path) -> str | None:
    """The task of a run directory or eval folder, or None when it cannot be told."""
    p = Path(path)
    for f in (p / "model_card.json", p / "metrics.json"):
        if f.is_file():
            try:
                return str(read_json(f).get("task"))
            except (OSError, ValueError):
                return None
    return None


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


def _entry(name: str, path: Path, sel: EvalData, out: Path, which: str, **kw: Any) -> _Entry:
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
    if meta.get("task") != "detect":
        raise CheckpointError(f"{path} is a {meta.get('task')!r} evaluation, not a detector's")
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
) -> Any:
    """Compare detect runs and eval folders against the first (the baseline).

    Args: as :func:`cvpipe.engine.compare.compare_runs`; entries may also be eval folders.

    Returns:
        :class:`cvpipe.engine.compare.CompareResult` (``data`` = compare.json).

    Raises:
        ConfigError: fewer than two entries, or names that do not match.
        CheckpointError: entries on other classes, tasks or data; no common image.
    """
    from cvpipe.engine.compare import CompareResult, run_names

    if len(runs) < 2:
        raise ConfigError("compare needs at least two runs (the first is the baseline)")
    out_dir = Path(out)
    labels = run_names(runs, names)
    sel = _selection(runs, data, split)
    kw = {"batch_size": batch_size, "workers": workers, "device": device}
    entries = [
        _entry(n, Path(r), sel, out_dir, which, **kw) for n, r in zip(labels, runs, strict=True)
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
        "which": which, "task": "detect", "classes": classes, "n": len(common),
        "baseline": entries[0].name, "runs": per_run, "pairs": pairs,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }  # fmt: skip
    write_json(out_dir / "compare.json", result)
    report_path = None
    if report:
        from cvpipe.engine.detect_report import write_detect_compare_report

        report_path = write_detect_compare_report(out_dir / "report.html", result)
    return CompareResult(out_dir, result, report_path)


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
