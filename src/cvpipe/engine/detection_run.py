"""``train()`` on a detect dataset: the trainer's run with a detector, its data and validation.

:class:`DetectionRun` is the trainer's :class:`~cvpipe.engine.trainer.Run` with four
task-specific pieces swapped in — nothing else is copied, so checkpoints (atomic
``last.pt`` / ``best.pt``), resume, early stopping, schedules with warmup, callbacks
(health collector included), the progress bar and NaN handling are the classifier's:

- the model: :func:`cvpipe.models.detection.create_detector` with ``num_classes`` from the
  dataset, the backbone's ImageNet weights (``weights: imagenet``) or the whole detector's
  COCO weights for the dataset's classes (``weights: coco``,
  :func:`cvpipe.models.coco_weights.start_from_coco`), loss weights
  and post-processing from ``detector.*``, layers frozen by ``freeze_pattern``, and with
  ``freeze: frozen`` the trunk of an SSD-family detector
  (:meth:`~cvpipe.models.detector.Detector.backbone_split`);
- the data: :func:`cvpipe.engine.detection.build_detection_data` (clipped / dropped
  boxes reported in ``problems.jsonl``, negatives kept); with ``freeze: frozen`` (and
  ``feature_cache`` not ``off``) cached trunk maps instead
  (:mod:`cvpipe.engine.detect_cache`: the optimizer then trains
  :class:`~cvpipe.engine.detect_cache.CachedDetector`, i.e. neck and head); otherwise,
  when the photos are much larger than the input size and no ``pack`` is set, they are
  decoded once into an automatic pack (``detector.auto_pack``,
  :func:`cvpipe.data.pack.auto_pack`) instead of every epoch;
- the epoch row: precise BatchNorm statistics (``detector.precise_bn``), then train loss
  and its parts, validation losses and COCO metrics
  (:func:`cvpipe.engine.detection.validate_detection`), ``val.loss_gap`` (val − train,
  seed 004), ``steps_per_s`` and ``img_per_s``;
- the model card: ``thresholds`` (score, NMS IoU, detections per image, and the counting
  threshold chosen on val) and ``detector`` (what rebuilds it) at the top level.

``early_stopping.metric`` defaults to ``val.mAP`` here (unless set). Settings that only
mean something for classifiers (``freeze: last-n``, ``augment``, ``head``,
``class_weights``, ``label_smoothing``, ``sampler: weighted``) are errors that say what to
use instead.

Example:
    >>> cfg = load_config(TrainConfig, overrides=["model=ssdlite320_mobilenet_v2", "epochs=5"])  # doctest: +SKIP
    >>> train("datasets/food", "runs/ssdlite", cfg).best["val.mAP"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from torch import nn

from cvpipe.data.transforms import AugmentConfig
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.detection import (
    DetectionData,
    build_detection_data,
    recompute_bn_stats,
    validate_detection,
)
from cvpipe.engine.loop import StepContext
from cvpipe.engine.train_data import default_workers
from cvpipe.engine.trainer import Run
from cvpipe.errors import ConfigError

log = logging.getLogger(__name__)


def detection_config(config: TrainConfig) -> TrainConfig:
    """``config`` checked for a detector, with ``val.mAP`` as the default early-stopping metric.

    Raises:
        ConfigError: classifier-only settings (the message names the detector equivalent).
    """
    problems = []
    if config.freeze == "last-n":
        problems.append(
            "freeze: last-n is for classifiers; detectors take freeze: frozen (the trunk, "
            "trained from cached feature maps) or freeze_pattern, e.g. "
            "--set freeze_pattern='model\\.backbone\\.features\\.0\\.'"
        )
    if config.augment != AugmentConfig():
        problems.append(
            "augment.* configures classifiers; detectors use detector.augment.* "
            "(hflip, photometric, zoom_out, iou_crop, scale_jitter)"
        )
    unused = {
        "head": config.head is not None,
        "class_weights": config.class_weights != "none",
        "label_smoothing": config.label_smoothing > 0,
        "sampler": config.sampler != "random",
    }
    if any(unused.values()):
        names = ", ".join(k for k, v in unused.items() if v)
        problems.append(
            f"{names}: not used by detectors; remove them (loss weights are detector.*)"
        )
    if problems:
        raise ConfigError("detect dataset: " + "; ".join(problems))
    if "metric" not in config.early_stopping.model_fields_set:
        es = config.early_stopping.model_copy(update={"metric": "val.mAP"})
        config = config.model_copy(update={"early_stopping": es})
    return config


class DetectionRun(Run):
    """One training run of a detector (see the module docstring)."""

    def __init__(
        self,
        ds: Any,
        rd: Any,
        config: TrainConfig,
        device: torch.device,
        dctx: Any,
        resume: bool,
        callbacks: Any,
    ) -> None:
        if dctx.enabled:
            raise ConfigError(
                "data-parallel training of detectors is not supported yet; run one process "
                "(leave out --nproc / torchrun)"
            )
        super().__init__(ds, rd, detection_config(config), device, dctx, resume, callbacks)
        self.box_counts: dict[str, int] = {}
        self.frozen: list[str] = []

    # -- model ------------------------------------------------------------------------
    def _build_model(self) -> Any:
        from cvpipe.models.classification import MODELS
        from cvpipe.models.detection import DETECTORS, create_detector
        from cvpipe.models.detector import freeze_backbone

        name = self.config.model_name
        if name in MODELS and name not in DETECTORS:
            raise ConfigError(
                f"model {name!r} is a classifier but {self.ds.root} is a detect dataset; use a detector: "
                f"{', '.join(DETECTORS.names())}"
            )
        torch.manual_seed(self.config.seed)
        d = self.config.detector
        coco = str(self.config.weights or "").lower() == "coco"
        det = create_detector(
            name, num_classes=len(self.ds.classes), weights=d.weights,
            backbone_weights=None if coco else self.config.weights,
            input_size=self.config.input_size, score_thresh=d.score_thresh, nms_iou=d.nms_iou,
            detections_per_img=d.detections_per_img, classification_weight=d.classification_weight,
            localization_weight=d.localization_weight,
        )  # fmt: skip
        if coco and d.weights is None:
            from cvpipe.models.coco_weights import start_from_coco

            report = start_from_coco(det, self.ds.classes, d.class_map or None)
            log.info("%s", report.summary())
        if self.config.freeze == "frozen":
            pattern = det.trunk_pattern()
            if pattern is None:
                raise ConfigError(
                    f"{name}: freeze: frozen needs an SSD-family detector (fixed input size, "
                    f"trunk / neck split); freeze {name}'s layers with freeze_pattern instead"
                )
            self.frozen = freeze_backbone(det, pattern)
        if self.config.freeze_pattern:
            more = freeze_backbone(det, self.config.freeze_pattern)
            self.frozen = sorted(set(self.frozen) | set(more))
        self.head_spec: dict[str, Any] = {}
        return det.to(self.device)

    def _meta(self, net: Any) -> dict[str, Any]:
        from cvpipe.models.preprocess import Preprocess
        from cvpipe.version import __version__

        card = net.card()
        size = int(net.input_size)
        pre = Preprocess(input_size=size, resize_size=size, mean=tuple(card["image_mean"]), std=tuple(card["image_std"]))  # fmt: skip
        return {
            "task": self.ds.task, "classes": self.ds.classes, "model": self.config.model_name, "head": {},
            "preprocess": pre.to_json(), "input_size": size, "freeze": self.config.freeze,
            "freeze_pattern": self.config.freeze_pattern, "weights": self.config.weights,
            "weights_info": {k: v for k, v in net.weights_info.items() if isinstance(v, (str, int, float, bool))},
            "cvpipe_version": __version__,
            "thresholds": {
                "score": card["score_thresh"], "nms_iou": card["nms_iou"],
                "detections_per_img": card["detections_per_img"],
            },
            "detector": card,
        }  # fmt: skip

    # -- data -------------------------------------------------------------------------
    def _build_data(self, splits: Any, net: Any) -> DetectionData:
        from cvpipe.data.pack import PackReader, auto_pack, needs_pack

        pack = PackReader.open(self.config.pack) if self.config.pack else None
        workers = self.config.workers if self.config.workers is not None else default_workers()
        size = int(net.input_size)
        cached = self.config.use_feature_cache
        self.pack_status: str | None = None
        if pack is None and self.config.detector.auto_pack and self.config.epochs > 1:
            # the cached path decodes each image once anyway: a pack would not save decodes
            median = None if cached else needs_pack([*splits.train, *splits.val], size)
            if median is not None:
                log.info(
                    "auto-pack: photos are large (median shorter side %d px, input %d px): "
                    "decoding them once at %d px instead of every epoch", median, size, size,
                )  # fmt: skip
                pack, self.pack_status = auto_pack(self.ds, [*splits.train, *splits.val], size)
        if cached:
            from cvpipe.engine.detect_cache import build_cached_detection_data

            data = build_cached_detection_data(
                self.ds, splits, self.config, net, self.device, workers=workers, pack=pack,
                report_skipped=self.skipped.report,
            )  # fmt: skip
        else:
            data = build_detection_data(
                self.ds, splits, self.config, self.device, input_size=size, workers=workers, pack=pack
            )  # fmt: skip
        self.box_counts = {
            "boxes_clipped": sum(p.kind == "box_outside_image" for p in data.problems),
            "boxes_dropped": sum(p.kind == "degenerate_box" for p in data.problems),
            "negative_images": data.negatives,
        }
        if data.problems and not self.resume:
            self.rd.root.mkdir(parents=True, exist_ok=True)
            with open(self.rd.problems, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(p.to_json()) + "\n" for p in data.problems)
        return data

    def _trained_module(self, net: Any, data: Any) -> nn.Module:
        if data.cached:
            from cvpipe.engine.detect_cache import CachedDetector

            return CachedDetector(net)
        return net

    def _card_extra(self) -> dict[str, Any]:
        return {
            **self.box_counts, "frozen_parameters": len(self.frozen),
            "auto_pack": getattr(self, "pack_status", None),
        }  # fmt: skip

    # -- epochs -----------------------------------------------------------------------
    def _epoch_row(
        self,
        epoch: int,
        stats: dict[str, Any],
        model: nn.Module,
        data: Any,
        eval_ctx: StepContext,
        step_fn: Any,
        optimizer: Any,
        t0: float,
    ) -> dict[str, Any]:
        import time

        if self.config.detector.precise_bn:
            model.train()
            recompute_bn_stats(model, data.train_loader, eval_ctx, self.config.detector.precise_bn)
        val = validate_detection(
            model, data.val_loader, eval_ctx, self.ds.classes,
            score_thresh=self.config.detector.val_score_thresh, on_skipped=self.skipped.report,
        )  # fmt: skip
        parts = {k: v for k, v in stats.items() if k.startswith("train.loss.")}
        row = {
            "kind": "epoch", "epoch": epoch + 1, "train.loss": stats["train.loss"], **parts, **val,
            "val.loss_gap": val["val.loss"] - stats["train.loss"],
            "lr": float(optimizer.param_groups[0]["lr"]),
            "steps_per_s": stats["steps"] / max(stats["time_s"], 1e-9), "img_per_s": stats["img_per_s"],
            "train.images": stats["images"], "skipped": stats["skipped"], "steps": stats["steps"],
            "time_s": time.perf_counter() - t0,
        }  # fmt: skip
        log.info(
            "epoch %d/%d  train.loss %.4f  val.loss %.4f  gap %+.4f  val.mAP %.4f  mAP50 %.4f  %.2f steps/s  %.1f img/s",
            epoch + 1, self.config.epochs, row["train.loss"], row["val.loss"], row["val.loss_gap"],
            row["val.mAP"], row["val.mAP50"], row["steps_per_s"], row["img_per_s"],
        )  # fmt: skip
        return row

    def _update_meta(self, meta: dict[str, Any], history: list[dict[str, Any]]) -> None:
        row = next((r for r in history if r["epoch"] == self.monitor.best_epoch), None)
        if row is not None and "val.count_threshold" in row:
            meta["thresholds"]["count_score"] = row["val.count_threshold"]
