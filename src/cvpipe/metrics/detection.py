"""COCO detection metrics, computed by faster-coco-eval (or pycocotools) on cvpipe records.

Inputs follow cvpipe's conventions, one entry per image, in the same order for ground
truth and predictions:

- ground truth: a mapping (or :class:`~cvpipe.data.manifest.Record`) with ``boxes``
  (``[N, 4]`` xyxy absolute pixels), ``labels`` (dataset class indices) and optionally
  ``width``/``height``, per-box flags as ``iscrowd`` (``[N]``) or ``meta["box_meta"]`` /
  ``box_meta`` (one dict per box, as importers write them);
- predictions: a mapping with ``boxes``, ``scores`` and ``labels`` (dataset class indices,
  e.g. a :class:`~cvpipe.models.detector.Detector`'s output); lists, NumPy arrays and
  torch tensors are all accepted; an image may have no boxes.

They are converted in memory to COCO dicts (image ids 1..N, category id = class index +
1, annotation ids from 1, ``bbox`` = ``[x, y, w, h]``, ``area`` = ``w * h``) and evaluated
with the standard COCO protocol: IoU thresholds .50:.05:.95, 101 recall points, area
ranges small < 32² ≤ medium < 96² ≤ large, at most 1/10/100 detections per image. A box
whose flags name ``iscrowd`` (or any flag in ``crowd_flags``, e.g. VOC's ``difficult``)
is a COCO crowd region: detections matching it count neither as true nor as false
positives, and it is never a miss. The numbers are those pycocotools gives on the same
dicts (tested to 1e-6).

Example:
    >>> gt = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}]
    >>> pr = [{"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]}]
    >>> round(coco_metrics(gt, pr, ["plane"])["map"], 3)
    1.0
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvpipe.errors import ConfigError, MissingDependencyError

log = logging.getLogger(__name__)

STAT_KEYS = (
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip
BACKENDS = ("faster-coco-eval", "pycocotools")


def _np(value: Any, dtype: Any, shape_tail: tuple[int, ...] = ()) -> np.ndarray:
    if value is None:
        return np.zeros((0, *shape_tail), dtype=dtype)
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value, dtype=dtype)
    return arr.reshape(-1, *shape_tail) if shape_tail else arr.reshape(-1)


def _get(item: Any, key: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def _crowd(item: Any, n: int, crowd_flags: Sequence[str]) -> np.ndarray:
    flags = _get(item, "iscrowd")
    if flags is not None and "iscrowd" in crowd_flags:
        out = _np(flags, np.int64) != 0
    else:
        out = np.zeros(n, dtype=bool)
    meta = _get(item, "meta")
    box_meta = _get(item, "box_meta")
    if box_meta is None and isinstance(meta, Mapping):
        box_meta = meta.get("box_meta")
    if box_meta:
        extra = np.array(
            [any(bool(int(m.get(f, 0) or 0)) for f in crowd_flags) for m in box_meta], dtype=bool
        )
        if extra.size == n:
            out = out | extra
    if out.size != n:
        raise ConfigError(f"{n} boxes but {out.size} crowd flags")
    return out


@dataclass(frozen=True)
class ImageBoxes:
    """One image's boxes as arrays: ``boxes [N, 4]`` xyxy, ``labels [N]``, ``scores [N]``
    (ones for ground truth), ``crowd [N]`` (ground truth only)."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    crowd: np.ndarray
    width: int | None = None
    height: int | None = None


def as_ground_truth(
    items: Sequence[Any], num_classes: int, crowd_flags: Sequence[str] = ("iscrowd",)
) -> list[ImageBoxes]:
    """Normalise ground-truth entries (mappings or manifest Records) to :class:`ImageBoxes`.

    Raises:
        ConfigError: mismatched lengths or a label outside ``0..num_classes-1`` (with the
            image index).
    """
    out = []
    for i, item in enumerate(items):
        boxes = _np(_get(item, "boxes"), np.float64, (4,))
        labels = _np(_get(item, "labels"), np.int64)
        _check(i, "ground truth", boxes, labels, num_classes)
        crowd = _crowd(item, len(boxes), crowd_flags)
        w, h = _get(item, "width"), _get(item, "height")
        out.append(
            ImageBoxes(
                boxes, labels, np.ones(len(boxes)), crowd,
                int(w) if w is not None else None, int(h) if h is not None else None,
            )
        )  # fmt: skip
    return out


def as_predictions(items: Sequence[Any], num_classes: int) -> list[ImageBoxes]:
    """Normalise prediction entries (``boxes``, ``scores``, ``labels``) to :class:`ImageBoxes`.

    Raises:
        ConfigError: mismatched lengths or labels outside the classes.
    """
    out = []
    for i, item in enumerate(items):
        boxes = _np(_get(item, "boxes"), np.float64, (4,))
        labels = _np(_get(item, "labels"), np.int64)
        scores = _np(_get(item, "scores"), np.float64)
        _check(i, "predictions", boxes, labels, num_classes)
        if scores.size != len(boxes):
            raise ConfigError(
                f"predictions of image {i}: {len(boxes)} boxes but {scores.size} scores"
            )
        out.append(ImageBoxes(boxes, labels, scores, np.zeros(len(boxes), dtype=bool)))
    return out


def _check(i: int, what: str, boxes: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    if labels.size != len(boxes):
        raise ConfigError(f"{what} of image {i}: {len(boxes)} boxes but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels[(labels < 0) | (labels >= num_classes)][0])
        raise ConfigError(
            f"{what} of image {i}: label {bad} outside the {num_classes} classes (0..{num_classes - 1})"
        )


def to_coco(
    gt: Sequence[ImageBoxes], preds: Sequence[ImageBoxes], classes: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO ground-truth dict and detection list (``loadRes`` format plus ``id``/``area``/
    ``iscrowd``, as ``loadRes`` would add them) for normalised inputs."""
    if len(gt) != len(preds):
        raise ConfigError(f"{len(gt)} ground-truth images but {len(preds)} prediction entries")
    images, annotations, detections = [], [], []
    ann_id = det_id = 0
    for idx, (g, p) in enumerate(zip(gt, preds, strict=True), start=1):
        width = g.width or int(
            np.ceil(max(g.boxes[:, 2].max(initial=1), p.boxes[:, 2].max(initial=1)))
        )
        height = g.height or int(
            np.ceil(max(g.boxes[:, 3].max(initial=1), p.boxes[:, 3].max(initial=1)))
        )
        images.append({"id": idx, "width": width, "height": height})
        xywh = _xywh(g.boxes)
        for box, label, crowd in zip(xywh, g.labels.tolist(), g.crowd.tolist(), strict=True):
            ann_id += 1
            annotations.append({
                "id": ann_id, "image_id": idx, "category_id": label + 1, "bbox": box,
                "area": box[2] * box[3], "iscrowd": int(crowd),
            })  # fmt: skip
        xywh = _xywh(p.boxes)
        for box, label, score in zip(xywh, p.labels.tolist(), p.scores.tolist(), strict=True):
            det_id += 1
            detections.append({
                "id": det_id, "image_id": idx, "category_id": label + 1, "bbox": box,
                "score": score, "area": box[2] * box[3], "iscrowd": 0,
            })  # fmt: skip
    categories = [{"id": i + 1, "name": str(name)} for i, name in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def _xywh(boxes: np.ndarray) -> list[list[float]]:
    out = boxes.copy()
    out[:, 2:] -= out[:, :2]
    return out.tolist()


@dataclass
class CocoEvaluation:
    """The accumulated COCO evaluation.

    Attributes:
        classes: class names (K).
        stats: the 12 standard numbers, in :data:`STAT_KEYS` order (-1 where undefined).
        precision: ``[T, R, K, A, M]`` interpolated precision (T IoU thresholds, R = 101
            recall points, A = all/small/medium/large, M = 1/10/100 detections); -1 where
            a class has no ground truth.
        recall: ``[T, K, A, M]`` maximum recall.
        scores: ``[T, R, K, A, M]`` the detection score at each precision point.
        iou_thresholds, recall_thresholds: the T and R axes.
        num_gt, num_pred: per class, non-crowd ground-truth boxes and predictions.
        num_images, num_crowd: totals.
        backend: which library computed it.
    """

    classes: list[str]
    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    num_gt: np.ndarray
    num_pred: np.ndarray
    num_images: int
    num_crowd: int
    backend: str

    def class_ap(self, k: int, iou: float | None = None) -> float | None:
        """AP of class ``k`` over all IoU thresholds, or at one (``0.5``, ``0.75``)."""
        p = self.precision[:, :, k, 0, -1]
        if iou is not None:
            p = p[self._iou_index(iou)]
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else None

    def class_ar(self, k: int) -> float | None:
        r = self.recall[:, k, 0, -1]
        valid = r[r > -1]
        return float(valid.mean()) if valid.size else None

    def _iou_index(self, iou: float) -> int:
        hits = np.flatnonzero(np.isclose(self.iou_thresholds, iou))
        if not hits.size:
            raise ConfigError(
                f"IoU {iou} is not one of the thresholds {self.iou_thresholds.tolist()}"
            )
        return int(hits[0])

    def metrics(self) -> dict[str, Any]:
        """JSON-safe summary: the 12 COCO numbers (``None`` where undefined, e.g. no small
        objects), per-class AP / AP50 / AP75 / AR@100 and counts."""
        out: dict[str, Any] = {
            k: (float(v) if v > -1 else None) for k, v in zip(STAT_KEYS, self.stats, strict=True)
        }
        out["per_class"] = {
            name: {
                "ap": self.class_ap(k),
                "ap50": self.class_ap(k, 0.5),
                "ap75": self.class_ap(k, 0.75),
                "ar_100": self.class_ar(k),
                "num_gt": int(self.num_gt[k]),
                "num_pred": int(self.num_pred[k]),
            }
            for k, name in enumerate(self.classes)
        }
        out.update(
            num_images=self.num_images,
            num_gt=int(self.num_gt.sum()),
            num_pred=int(self.num_pred.sum()),
            num_crowd=self.num_crowd,
            backend=self.backend,
        )
        return out


def coco_evaluate(
    gt: Sequence[Any],
    preds: Sequence[Any],
    classes: Sequence[str],
    iou_type: str = "bbox",
    *,
    crowd_flags: Sequence[str] = ("iscrowd",),
    backend: str = "faster-coco-eval",
) -> CocoEvaluation:
    """Run the COCO evaluation and keep its arrays (for PR curves and per-class numbers).

    Args:
        gt: ground truth per image (module docstring).
        preds: predictions per image, same order and length.
        classes: class names; labels index them.
        iou_type: ``"bbox"`` (the only type cvpipe's records carry).
        crowd_flags: per-box flags that mark a crowd/ignore region.
        backend: ``"faster-coco-eval"`` (default, C++) or ``"pycocotools"``.

    Raises:
        ConfigError: bad inputs, iou_type or backend.
        MissingDependencyError: the backend is not installed.
    """
    if iou_type != "bbox":
        raise ConfigError(
            f"iou_type {iou_type!r} is not supported: cvpipe evaluates boxes ('bbox')"
        )
    if backend not in BACKENDS:
        raise ConfigError(f"unknown COCO backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if not classes:
        raise ConfigError("classes must name at least one class")
    if len(gt) != len(preds):
        raise ConfigError(f"{len(gt)} ground-truth images but {len(preds)} prediction entries")
    g = as_ground_truth(gt, len(classes), crowd_flags)
    p = as_predictions(preds, len(classes))
    gt_dict, dets = to_coco(g, p, classes)
    ev = _run(gt_dict, dets, backend)
    num_gt = np.zeros(len(classes), dtype=np.int64)
    num_pred = np.zeros(len(classes), dtype=np.int64)
    for item in g:
        np.add.at(num_gt, item.labels[~item.crowd], 1)
    for item in p:
        np.add.at(num_pred, item.labels, 1)
    return CocoEvaluation(
        classes=[str(c) for c in classes],
        stats=np.asarray(ev.stats[:12], dtype=np.float64),
        precision=np.asarray(ev.eval["precision"]),
        recall=np.asarray(ev.eval["recall"]),
        scores=np.asarray(ev.eval["scores"]),
        iou_thresholds=np.asarray(ev.params.iouThrs),
        recall_thresholds=np.asarray(ev.params.recThrs),
        num_gt=num_gt,
        num_pred=num_pred,
        num_images=len(g),
        num_crowd=int(sum(int(item.crowd.sum()) for item in g)),
        backend=backend,
    )


def coco_metrics(
    gt: Sequence[Any],
    preds: Sequence[Any],
    classes: Sequence[str],
    iou_type: str = "bbox",
    *,
    crowd_flags: Sequence[str] = ("iscrowd",),
    backend: str = "faster-coco-eval",
) -> dict[str, Any]:
    """COCO metrics as a JSON-safe dict.

    Returns:
        ``map`` (mAP@[.5:.95]), ``map_50``, ``map_75``, ``map_small``, ``map_medium``,
        ``map_large``, ``mar_1``, ``mar_10``, ``mar_100``, ``mar_small``, ``mar_medium``,
        ``mar_large`` (``None`` where COCO reports -1), ``per_class`` {name: {ap, ap50,
        ap75, ar_100, num_gt, num_pred}}, ``num_images``, ``num_gt``, ``num_pred``,
        ``num_crowd``, ``backend``.

    Raises:
        See :func:`coco_evaluate`.
    """
    return coco_evaluate(
        gt, preds, classes, iou_type, crowd_flags=crowd_flags, backend=backend
    ).metrics()


def _run(gt_dict: dict[str, Any], dets: list[dict[str, Any]], backend: str) -> Any:
    if backend == "faster-coco-eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError:
            raise MissingDependencyError(
                "COCO evaluation needs faster-coco-eval (pip install faster-coco-eval) "
                "or backend='pycocotools'"
            ) from None
        coco_gt = COCO(gt_dict)
        coco_dt = COCO()  # built directly: loadRes would re-derive id/area/iscrowd per box
        coco_dt.dataset = {
            "images": gt_dict["images"],
            "categories": gt_dict["categories"],
            "annotations": dets,
        }
        coco_dt.createIndex()
        ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=log.debug)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        return ev
    try:
        from pycocotools.coco import COCO as PyCOCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise MissingDependencyError(
            "backend='pycocotools' needs pycocotools (pip install pycocotools)"
        ) from None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = PyCOCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        coco_dt = PyCOCO()
        coco_dt.dataset = {
            "images": gt_dict["images"],
            "categories": gt_dict["categories"],
            "annotations": dets,
        }
        coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev
