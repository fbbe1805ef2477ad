"""Boxes a trained detector confidently disagrees with (detect datasets, ``--run``).

For every audited image the run's detector predicts boxes (in pixels of the original
file) and they are matched to the labelled boxes by IoU:

- **missing box**: a detection scoring at least ``score`` that overlaps no labelled box
  (of any class) by ``iou``: an object the annotator may have left out;
- **spurious box**: a labelled box that no detection of its class supports (none scores
  ``support`` or more at ``iou``): a box drawn on nothing, or a badly placed one;
- **class disagreement**: a detection scoring at least ``score`` that matches a labelled
  box of another class and none of its own.

Images the detector trained on are marked (``seen``): it disagreeing with a label it was
trained on is a stronger hint than on new images.

Example:
    >>> found = detector_disagreements(ds, records, "runs/ssd", DetectionAuditConfig())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.audit.config import DetectionAuditConfig
from cvpipe.data.manifest import Dataset, Record
from cvpipe.metrics.detection_analysis import box_iou

log = logging.getLogger(__name__)


@dataclass
class BoxDisagreement:
    """One box the detector and the labels disagree on.

    Attributes:
        index: record position; kind: ``missing`` | ``spurious`` | ``class``.
        box: xyxy pixels; label: class index (the detector's for missing/class, the
            label's for spurious); score: the detection's score (for spurious: the best
            supporting score of its class, 0 when none).
    """

    index: int
    kind: str
    box: list[float]
    label: int
    score: float
    given: int | None = None
    seen: bool = False

    def to_json(
        self, ids: Sequence[str], files: Sequence[str], classes: Sequence[str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": ids[self.index], "file": files[self.index], "kind": self.kind,
            "box": [round(v, 1) for v in self.box], "label": classes[self.label],
            "score": round(self.score, 4), "trained_on": self.seen,
        }  # fmt: skip
        if self.given is not None:
            out["given"] = classes[self.given]
        return out


def compare_boxes(
    index: int,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    det: dict[str, np.ndarray],
    cfg: DetectionAuditConfig,
    seen: bool = False,
) -> list[BoxDisagreement]:
    """Disagreements of one image (see the module docstring)."""
    boxes, scores, labels = det["boxes"], det["scores"], det["labels"]
    out: list[BoxDisagreement] = []
    ious = (
        box_iou(boxes, gt_boxes)
        if len(boxes) and len(gt_boxes)
        else np.zeros((len(boxes), len(gt_boxes)))
    )
    for d in np.flatnonzero(scores >= cfg.score):
        over = ious[d] >= cfg.iou if len(gt_boxes) else np.zeros(0, bool)
        if not over.any():
            out.append(
                BoxDisagreement(
                    index, "missing", boxes[d].tolist(), int(labels[d]), float(scores[d]), seen=seen
                )
            )
        elif not (gt_labels[over] == labels[d]).any():
            g = int(gt_labels[over][0])
            out.append(
                BoxDisagreement(
                    index, "class", boxes[d].tolist(), int(labels[d]), float(scores[d]), g, seen
                )
            )
    for g in range(len(gt_boxes)):
        same = (
            (labels == gt_labels[g]) & (ious[:, g] >= cfg.iou) if len(boxes) else np.zeros(0, bool)
        )
        best = float(scores[same].max()) if same.any() else 0.0
        if best < cfg.support:
            out.append(
                BoxDisagreement(
                    index, "spurious", gt_boxes[g].tolist(), int(gt_labels[g]), best, seen=seen
                )
            )
    return out


def detector_disagreements(
    ds: Dataset,
    records: Sequence[Record],
    run: str | Path,
    cfg: DetectionAuditConfig,
    device: str = "cpu",
) -> list[BoxDisagreement]:
    """Run the detector of ``run`` on ``records`` and list its confident disagreements,
    most confident first.

    Raises:
        CheckpointError: the run is not a detector or its classes differ from the dataset's.
    """
    from cvpipe.errors import CheckpointError
    from cvpipe.inference.detect import DetectionPredictor
    from cvpipe.io import read_json

    pred = DetectionPredictor.from_run(run, device=device)
    assert isinstance(pred, DetectionPredictor)  # from_run checks the class itself
    if list(pred.card.classes) != list(ds.classes):
        raise CheckpointError(
            f"{run}: the detector's classes {pred.card.classes} differ from the dataset's "
            f"{ds.classes}; audit with a run trained on this dataset"
        )
    pred.set_postprocess(score_thresh=min(cfg.support, cfg.score))
    lock = Path(run) / "dataset.lock"
    trained = set(read_json(lock).get("splits", {}).get("train", [])) if lock.is_file() else set()
    out: list[BoxDisagreement] = []
    paths = [ds.image_path(r) for r in records]
    for res in pred.predict_paths(paths, batch_size=8):
        if res.output is None:
            continue
        r = records[res.index]
        gt = np.asarray(r.boxes or [], dtype=np.float32).reshape(-1, 4)
        gl = np.asarray(r.labels or [], dtype=np.int64)
        out += compare_boxes(res.index, gt, gl, res.output, cfg, r.id in trained)
    out.sort(key=lambda b: (-b.score if b.kind != "spurious" else b.score - 1.0, b.index))
    log.info("detector disagreements: %d boxes on %d images", len(out), len({b.index for b in out}))
    return out
