"""``audit()``: one pass over a dataset for near-duplicates, leaks, label errors,
outliers, a size shortcut and (with a detector run) disputed boxes.

Writes ``DATASET/audit/audit.json`` (every finding, by record id and file) and
``report.html`` (image grids per finding); the dataset itself is never modified
(:func:`cvpipe.audit.fix.write_fixed` writes a cleaned copy elsewhere).

Example:
    >>> result = audit("datasets/weather")  # doctest: +SKIP
    >>> result.summary["leak_groups"]  # doctest: +SKIP
    37
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.audit.config import AuditConfig
from cvpipe.audit.detections import BoxDisagreement, detector_disagreements
from cvpipe.audit.embeddings import Embeddings, embed, normalise
from cvpipe.audit.labels import LabelIssue, find_label_issues, issue_json, kfold_probabilities
from cvpipe.audit.neighbors import DuplicateGroup, group_duplicates, knn, similar_pairs
from cvpipe.audit.outliers import Outlier, find_outliers
from cvpipe.audit.shortcut import ShortcutResult, size_shortcut
from cvpipe.data.manifest import Dataset, Record
from cvpipe.errors import CheckpointError, ConfigError, DatasetError
from cvpipe.io import read_json, write_json
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)


@dataclass
class AuditResult:
    """Everything an audit found (see :func:`audit`); indices are positions in ``records``."""

    dataset: Dataset
    records: list[Record]
    config: AuditConfig
    embeddings: Embeddings
    groups: list[DuplicateGroup]
    label_issues: list[LabelIssue]
    outliers: list[Outlier]
    shortcut: ShortcutResult | None
    boxes: list[BoxDisagreement]
    summary: dict[str, Any]
    out: Path
    run: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def files(self) -> list[str]:
        return [r.file for r in self.records]

    def to_json(self) -> dict[str, Any]:
        ids, files, classes = self.ids, self.files, self.dataset.output_classes
        return {
            "dataset": str(self.dataset.root.resolve()),
            "task": self.dataset.task,
            "run": self.run,
            "config": self.config.model_dump(mode="json"),
            "embeddings": {"model": self.embeddings.model, "feature_cache": self.embeddings.cache,
                           "key": self.embeddings.key, "unreadable": self.embeddings.skipped},
            "summary": self.summary,
            "duplicates": [g.to_json(ids, files) for g in self.groups],
            "label_issues": [issue_json(t, ids, files, classes) for t in self.label_issues],
            "outliers": [
                {"id": ids[o.index], "file": files[o.index], "distance": round(o.distance, 4),
                 "z": round(o.z, 2), "nearest_class": classes[o.nearest_class] if classes else None}
                for o in self.outliers
            ],
            "size_shortcut": self.shortcut.to_json() if self.shortcut else None,
            "detector_disagreements": [b.to_json(ids, files, classes) for b in self.boxes],
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }  # fmt: skip


def label_key(ds: Dataset, r: Record) -> str:
    """What "the same label" means for duplicates: the class, or the set of box classes."""
    classes = get_task(ds.task).record_classes(r, ds.classes)
    return ",".join(sorted({ds.output_classes[i] for i in classes}))


def _records(ds: Dataset, config: AuditConfig) -> list[Record]:
    if config.splits is None:
        recs = list(ds.records)
    else:
        known = sorted({str(r.split) for r in ds.records})
        bad = [s for s in config.splits if s not in known]
        if bad:
            raise ConfigError(f"splits: {bad} not in {ds.root} (its splits: {', '.join(known)})")
        recs = [r for r in ds.records if str(r.split) in config.splits]
    if len(recs) < 2:
        raise DatasetError(f"{ds.root}: an audit needs at least 2 images, found {len(recs)}")
    return recs


def _run_probs(
    ds: Dataset, recs: list[Record], run: str, device: str
) -> tuple[dict[int, np.ndarray], set[str]]:
    """Probabilities of ``run`` for the records it did not train on."""
    from cvpipe.audit.labels import run_probabilities
    from cvpipe.engine.runs import ModelCard, RunDir

    rd = RunDir(run)
    card = ModelCard.load(rd.card)
    if list(card.classes) != list(ds.output_classes):
        raise CheckpointError(
            f"{run}: its classes {card.classes} differ from the dataset's {ds.output_classes}; "
            "audit with a run trained on this dataset (or without --run)"
        )
    trained = (
        set(read_json(rd.lock).get("splits", {}).get("train", [])) if rd.lock.is_file() else set()
    )
    unseen = [i for i, r in enumerate(recs) if r.id not in trained]
    probs = run_probabilities(run, [ds.image_path(recs[i]) for i in unseen], device=device)
    return {i: probs[k] for k, i in enumerate(unseen) if np.isfinite(probs[k]).all()}, trained


def _label_pass(
    ds: Dataset, recs: list[Record], emb: Embeddings, config: AuditConfig, run: str | None
) -> tuple[list[LabelIssue], dict[str, Any]]:
    y = np.array([ds.class_index(r) for r in recs], dtype=np.int64)
    ok = np.flatnonzero(emb.valid)
    k = len(ds.output_classes)
    probs = np.zeros((len(recs), k))
    probs[ok] = kfold_probabilities(
        emb.vectors[ok],
        y[ok],
        n_classes=k,
        folds=config.labels.folds,
        seed=config.seed,
        C=config.labels.C,
    )
    sources = ["kfold"] * len(recs)
    info: dict[str, Any] = {"probabilities": "k-fold logistic regression on cached features"}
    if run is not None:
        from cvpipe.engine.devices import resolve_device

        by_run, _ = _run_probs(ds, recs, run, str(resolve_device(config.device)))
        for i, p in by_run.items():
            probs[i], sources[i] = p, "run"
        info["probabilities"] = (
            f"{len(by_run)} images from run {run} (not trained on), the others k-fold"
        )
    issues, _ = find_label_issues(
        y[ok], probs[ok], filter_by=config.labels.filter_by, sources=[sources[i] for i in ok]
    )
    for t in issues:  # positions within ok → positions within recs
        t.index = int(ok[t.index])
    return issues, info


def audit(
    dataset: str | Path, config: AuditConfig | None = None, *, run: str | Path | None = None
) -> AuditResult:
    """Audit a dataset; write ``audit.json`` and ``report.html``.

    Args:
        dataset: dataset directory.
        config: :class:`AuditConfig` (defaults when None).
        run: a trained run: its predictions on images it did not train on score the
            labels (classify/count), or its detector's disagreements are listed (detect).

    Returns:
        An :class:`AuditResult`.

    Raises:
        DatasetError: fewer than 2 images; ConfigError: unknown splits;
        CheckpointError: a run for other classes; MissingDependencyError: cleanlab or
        scikit-learn missing (``pip install 'cvpipe[audit]'``).
    """
    from cvpipe.data.duplicates import hash_files

    config = config or AuditConfig()
    ds = Dataset.load(dataset)
    recs = _records(ds, config)
    out = Path(config.out) if config.out else ds.root / "audit"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    emb = embed(ds, recs, config)
    dup_emb = embed(ds, recs, config, input_size=config.duplicates.input_size)
    timings["embeddings"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    digests = hash_files([ds.image_path(r) for r in recs])
    unit = normalise(dup_emb.raw, dup_emb.valid, centre=False)
    sims, idx = knn(unit, config.duplicates.neighbors, config.duplicates.backend)
    pairs = similar_pairs(sims, idx, config.duplicates.threshold, dup_emb.valid)
    keys = [label_key(ds, r) for r in recs]
    groups = group_duplicates(len(recs), pairs, digests, [r.split for r in recs], keys)
    timings["duplicates"] = time.perf_counter() - t0
    issues: list[LabelIssue] = []
    label_info: dict[str, Any] = {}
    shortcut = None
    boxes: list[BoxDisagreement] = []
    t0 = time.perf_counter()
    if get_task(ds.task).one_class_per_image:  # label errors, class outliers, size shortcut
        y = np.array([ds.class_index(r) for r in recs], dtype=np.int64)
        if config.labels.enabled:
            issues, label_info = _label_pass(ds, recs, emb, config, str(run) if run else None)
        timings["labels"] = time.perf_counter() - t0
        classes = ds.output_classes  # what class_index indexes
        outliers = find_outliers(emb.vectors, y, emb.valid, len(classes), config.outliers.z)
        shortcut = size_shortcut(
            [r.width for r in recs], [r.height for r in recs], y, len(classes),
            classes=classes, folds=config.shortcut.folds, margin=config.shortcut.margin, seed=config.seed,
            exclusive_share=config.shortcut.exclusive_share, min_exclusive=config.shortcut.min_exclusive,
        )  # fmt: skip
    else:  # objects: outliers over all images, boxes a detector run disputes
        zeros = np.zeros(len(recs), dtype=np.int64)
        outliers = find_outliers(emb.vectors, zeros, emb.valid, 1, config.outliers.z)
        if run is not None:
            from cvpipe.engine.devices import resolve_device

            boxes = detector_disagreements(
                ds, recs, run, config.detection, str(resolve_device(config.device))
            )
            timings["detector"] = time.perf_counter() - t0
    summary = _summary(recs, groups, issues, outliers, shortcut, boxes, emb)
    summary.update(label_info)
    result = AuditResult(
        ds, recs, config, emb, groups, issues, outliers, shortcut, boxes, summary, out,
        str(run) if run else None, timings,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "audit.json", result.to_json())
    if config.report:
        from cvpipe.audit.report import write_report

        write_report(result, out / "report.html")
    return result


def _summary(
    recs: list[Record], groups: list[DuplicateGroup], issues: list[LabelIssue],
    outliers: list[Outlier], shortcut: ShortcutResult | None, boxes: list[BoxDisagreement], emb: Embeddings,
) -> dict[str, Any]:  # fmt: skip
    cross = 0  # pairs of images in one group but different splits
    for g in groups:
        per_split: dict[str | None, int] = {}
        for s in g.splits:
            per_split[s] = per_split.get(s, 0) + 1
        n = len(g.members)
        cross += n * (n - 1) // 2 - sum(c * (c - 1) // 2 for c in per_split.values())
    return {
        "images": len(recs),
        "unreadable": int((~emb.valid).sum()),
        "duplicate_groups": len(groups),
        "identical_groups": sum(g.identical for g in groups),
        "near_duplicate_groups": sum(not g.identical for g in groups),
        "images_in_duplicate_groups": sum(len(g.members) for g in groups),
        "leak_groups": sum(g.leak for g in groups),
        "cross_split_pairs": cross,
        "conflicting_label_groups": sum(g.conflict for g in groups),
        "label_issues": len(issues),
        "outliers": len(outliers),
        "size_shortcut": bool(shortcut and shortcut.flagged),
        "size_shortcut_balanced_accuracy": round(shortcut.balanced_accuracy, 4)
        if shortcut
        else None,
        "box_disagreements": len(boxes),
    }
