"""The detection parts of training: step function, data pipeline, per-epoch validation.

The trainer's loops (:mod:`cvpipe.engine.loop`) stay task-agnostic; detection plugs in

- :func:`detection_step` (``DetectTask.step_function()``): a batch of
  ``(images, targets, skipped)`` lists → the detector's weighted loss sum, reporting each
  term (``classification``, ``bbox_regression``, ...) as ``train.loss.<part>``;
- :func:`build_detection_data`: ground truth checked and cleaned once
  (:func:`cvpipe.data.detection_datasets.detection_targets`: boxes outside the image clipped,
  degenerate boxes dropped, both reported; class ids outside the model an error), then
  seeded loaders with box-aware augmentation (:mod:`cvpipe.data.detection_transforms`);
  images without boxes stay in as negatives;
- :func:`recompute_bn_stats` (precise BatchNorm) before validating, so eval-mode numbers
  reflect this epoch's weights;
- :func:`validate_detection`: validation losses (BatchNorm frozen, for the eval − train
  gap) and COCO mAP of the detections (:func:`cvpipe.metrics.detection.coco_metrics`).

:class:`cvpipe.engine.detection_run.DetectionRun` wires them into the trainer.

Example:
    >>> data = build_detection_data(ds, splits, config, torch.device("cpu"))  # doctest: +SKIP
    >>> row = validate_detection(detector, data.val_loader, ctx, ds.classes)  # doctest: +SKIP
    >>> row["val.mAP"], row["val.loss"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from cvpipe.data.datasets import EpochSampler
from cvpipe.data.detection_datasets import (
    BoxProblem,
    DetectionDataset,
    DetectionTargets,
    collate_detection,
    detection_targets,
)
from cvpipe.data.manifest import Dataset
from cvpipe.engine.loop import StepContext, StepOutput

log = logging.getLogger(__name__)

# epoch-row names of the COCO numbers validation reports
VAL_METRICS = {
    "map": "val.mAP", "map_50": "val.mAP50", "map_75": "val.mAP75",
    "mar_1": "val.AR1", "mar_10": "val.AR10", "mar_100": "val.AR100",
}  # fmt: skip


def _to_device(batch: Any, ctx: StepContext) -> tuple[Any, list[dict[str, torch.Tensor]]]:
    nb = ctx.device.type == "cuda"
    first = batch[0]
    # a MapBatch of cached trunk maps (cvpipe.engine.detect_cache) moves as one
    images = first.to(ctx.device) if hasattr(first, "maps") else [ctx.to_device(x) for x in first]
    targets = [{k: v.to(ctx.device, non_blocking=nb) for k, v in t.items()} for t in batch[1]]
    return images, targets


def detection_step(model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput:
    """One training step of a :class:`~cvpipe.models.detector.Detector`.

    Args:
        model: the detector (possibly wrapped), in training mode.
        batch: ``(images [3, H, W] floats in 0..1, targets {"boxes", "labels"}, skipped)``,
            or a :class:`~cvpipe.engine.detect_cache.MapBatch` of cached trunk maps for
            images (with a :class:`~cvpipe.engine.detect_cache.CachedDetector` model).
        ctx: device and autocast.

    Returns:
        The weighted loss sum (float32), the image count, ``correct = 0`` and each loss
        term in ``parts``.
    """
    images, targets = _to_device(batch, ctx)
    with ctx.autocast():
        losses = model(images, targets)
    losses = {k: v.float() for k, v in losses.items()}
    loss = torch.stack(list(losses.values())).sum()
    parts = {k: float(v.detach()) for k, v in losses.items()}
    if not all(math.isfinite(v) for v in parts.values()):
        log.error("non-finite detection loss terms: %s", parts)
    return StepOutput(loss, len(images), 0, parts)


# ------------------------------------------------------------------------- data
@dataclass
class DetectionData:
    """Loaders of a detection run and what cleaning the ground truth found.

    Attributes:
        train_loader / val_loader: yield ``(images, targets, skipped)`` list batches.
        train_sampler: the :class:`EpochSampler` of the training loader.
        problems: boxes clipped or dropped (train and val).
        negatives: training images without boxes (kept as negatives).
    """

    train_loader: Any
    val_loader: Any
    train_sampler: EpochSampler
    problems: list[BoxProblem]
    negatives: int
    criterion: nn.Module = nn.Identity()  # the detector computes its own losses
    cached: bool = False
    cache_status: str | None = None

    def set_epoch(self, epoch: int) -> None:
        self.train_sampler.set_epoch(epoch)


def check_ground_truth(
    ds: Dataset, records: Sequence[Any], num_classes: int, split: str
) -> DetectionTargets:
    """:func:`detection_targets` with a summary logged (clipped, dropped, negatives)."""
    targets = detection_targets(records, num_classes)
    if targets.problems:
        log.warning(
            "%s %s split: %d boxes outside the image clipped, %d degenerate boxes dropped "
            "(listed in the run's problems.jsonl)",
            ds.root, split, targets.clipped, targets.dropped,
        )  # fmt: skip
    return targets


def build_detection_data(
    ds: Dataset,
    splits: Any,
    config: Any,
    device: torch.device,
    *,
    input_size: int,
    workers: int,
    pack: Any = None,
) -> DetectionData:
    """Seeded training and validation loaders over cleaned detection ground truth.

    Args:
        ds: the detect dataset.
        splits: ``.train`` and ``.val`` record lists.
        config: the :class:`~cvpipe.engine.config.TrainConfig` (``batch_size``, ``seed``,
            ``detector.augment``, ``on_error``).
        device: where the model runs (pinned memory on CUDA).
        input_size: the detector's input size (JPEG draft decode, scale-jitter crop).
        workers: DataLoader workers.
        pack: an optional :class:`~cvpipe.data.pack.PackReader`.

    Raises:
        DatasetError: a class id outside the dataset's classes (record named).
    """
    from cvpipe.data.detection_transforms import (
        detection_eval_transform,
        detection_train_transform,
    )

    n = len(ds.classes)
    tr = check_ground_truth(ds, splits.train, n, "train")
    va = check_ground_truth(ds, splits.val, n, "val")
    negatives = sum(1 for b in tr.boxes if len(b) == 0)
    if negatives:
        log.info(
            "%d of %d training images have no boxes: used as negatives", negatives, len(tr.boxes)
        )
    aug = detection_train_transform(config.detector.augment, input_size)
    common: dict[str, Any] = {
        "batch_size": config.batch_size,
        "num_workers": workers,
        "collate_fn": collate_detection,
        "pin_memory": device.type == "cuda",
        "persistent_workers": workers > 0,
        "generator": torch.Generator().manual_seed(config.seed),
    }
    train_ds = DetectionDataset(
        ds, splits.train, tr, aug, draft=input_size, pack=pack, on_error=config.on_error
    )
    val_ds = DetectionDataset(
        ds,
        splits.val,
        va,
        detection_eval_transform(),
        draft=input_size,
        pack=pack,
        on_error=config.on_error,
    )
    sampler = EpochSampler(len(train_ds), seed=config.seed)
    val_sampler = EpochSampler(len(val_ds), shuffle=False, pad=False)
    return DetectionData(
        DataLoader(train_ds, sampler=sampler, **common),
        DataLoader(val_ds, sampler=val_sampler, **common),
        sampler,
        tr.problems + va.problems,
        negatives,
    )


# ------------------------------------------------------------------------- BatchNorm
@torch.no_grad()
def recompute_bn_stats(detector: nn.Module, loader: Any, ctx: StepContext, batches: int) -> int:
    """Precise BatchNorm: recompute the running statistics of the trained BatchNorm layers.

    BatchNorm keeps an exponential average of batch statistics (momentum 0.03 in the SSDLite
    layers, TF's default): after a few hundred steps it still remembers old weights, so
    eval-mode predictions and validation losses are much worse than the model (detectron2's
    ``PreciseBN`` hook fixes the same). This resets the running statistics of every
    BatchNorm layer in training mode (frozen ones stay as they are) and replaces them by
    the plain average over ``batches`` training batches, forward only.

    Args:
        detector: the detector, in training mode.
        loader: the training loader (``(images, targets, skipped)`` batches).
        ctx: device and autocast.
        batches: how many batches to average over (0 = leave the statistics alone).

    Returns:
        The number of batches used.
    """
    bns = [
        m
        for m in detector.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    if not bns or batches <= 0:
        return 0
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    used = 0
    try:
        for batch in loader:
            if not batch[0]:
                continue
            images, targets = _to_device(batch, ctx)
            with ctx.autocast():
                detector(images, targets)
            used += 1
            if used >= batches:
                break
    finally:
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum
    return used


# ------------------------------------------------------------------------- validation
@torch.no_grad()
def validate_detection(
    detector: Any,
    loader: Any,
    ctx: StepContext,
    classes: Sequence[str],
    *,
    score_thresh: float | None = None,
    on_skipped: Callable[[list[Any]], None] | None = None,
) -> dict[str, Any]:
    """Validation losses and COCO metrics of ``detector`` over ``loader``.

    Args:
        detector: a :class:`~cvpipe.models.detector.Detector` (not DDP-wrapped).
        loader: yields ``(images, targets, skipped)`` batches.
        ctx: device and autocast.
        classes: dataset class names.
        score_thresh: score threshold of the scored detections while validating (low,
            as COCO evaluation expects); the detector's own setting is restored after.
        on_skipped: called with the markers of unreadable images.

    Returns:
        ``val.loss`` (weighted sum, as in training), ``val.loss.<part>``, ``val.mAP``
        (@[.5:.95]), ``val.mAP50``, ``val.mAP75``, ``val.AR1``, ``val.AR10``,
        ``val.AR100`` (NaN when undefined, e.g. no ground-truth boxes), ``val.images``,
        ``val.count_threshold`` / ``val.count_mae`` (detections counted per image at the
        score threshold that best matches the true counts).
    """
    from cvpipe.metrics.detection import coco_metrics
    from cvpipe.metrics.detection_analysis import choose_count_threshold

    was_training = detector.training
    saved = detector.postprocess_settings()
    if score_thresh is not None:
        detector.set_postprocess(score_thresh=score_thresh)
    sums: dict[str, float] = {}
    seen = 0
    gts: list[dict[str, Any]] = []
    preds: list[dict[str, Any]] = []
    try:
        for batch in loader:
            if batch[2] and on_skipped is not None:
                on_skipped(batch[2])
            if not batch[0]:
                continue
            images, targets = _to_device(batch, ctx)
            with ctx.autocast():
                losses = detector.validation_losses(images, targets)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.float()) * len(images)
            detector.eval()
            with ctx.autocast():
                out = detector(images)
            preds += [{k: v.float().cpu() for k, v in d.items()} for d in out]
            gts += [{k: v.cpu() for k, v in t.items()} for t in batch[1]]
            seen += len(images)
    finally:
        detector.set_postprocess(**saved)
        detector.train(was_training)
    if not seen:
        return {
            "val.loss": float("nan"),
            "val.images": 0,
            **{v: float("nan") for v in VAL_METRICS.values()},
        }
    row: dict[str, Any] = {"val.loss": sum(sums.values()) / seen}
    row.update({f"val.loss.{k}": v / seen for k, v in sorted(sums.items())})
    metrics = coco_metrics(gts, preds, list(classes))
    for key, name in VAL_METRICS.items():
        value = metrics.get(key)
        row[name] = float(value) if value is not None and value >= 0 else float("nan")
    row["val.images"] = seen
    counting = choose_count_threshold(gts, preds, num_classes=len(classes))
    row["val.count_threshold"], row["val.count_mae"] = counting.threshold, counting.mae
    return row
