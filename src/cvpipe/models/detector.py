"""The :class:`Detector`: a torchvision detection model taking and returning dataset labels.

What every detector does once built (:mod:`cvpipe.models.detection` registers and builds
them; the contract of inputs, outputs, labels and loss weights is in that module's
docstring): shift dataset labels to model labels and back, weigh the loss terms, compute
validation losses without touching BatchNorm statistics, expose its frozen-trunk split
and post-processing settings; and freezing parameters by regex (:func:`freeze_backbone`)
or BatchNorm layers into FrozenBatchNorm2d (:func:`freeze_batchnorm`).

Example:
    >>> det = create_detector("ssdlite320_mobilenet_v2", num_classes=2)  # doctest: +SKIP
    >>> freeze_backbone(det, det.trunk_pattern())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from cvpipe.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

CLASSIFICATION_KEYS = ("classification", "loss_classifier", "loss_objectness")
LOCALIZATION_KEYS = ("bbox_regression", "loss_box_reg", "loss_rpn_box_reg")


class Detector(nn.Module):
    """A torchvision detector taking and returning dataset labels, with weighted losses.

    Attributes:
        model: the torchvision detection model (labels shifted by ``label_offset``).
        name: registered detector name.
        num_classes: dataset classes (the model has one more: background).
        input_size: side of the square (SSD) or shorter side (R-CNN family) fed to the net.
        classification_weight, localization_weight: loss multipliers (module docstring).
        label_offset: 1 — dataset label i is model label i + 1.
        weights_info: where backbone weights came from (``{"source": "none"}`` if random).
        degenerate_dropped: degenerate target boxes dropped so far.
    """

    label_offset = 1

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        num_classes: int,
        input_size: int,
        classification_weight: float = 1.0,
        localization_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.num_classes = num_classes
        self.input_size = input_size
        self.classification_weight = float(classification_weight)
        self.localization_weight = float(localization_weight)
        self.weights_info: dict[str, Any] = {"source": "none"}
        self.degenerate_dropped = 0
        self._frozen_modules: list[str] = []
        self._split: list[Any] = []  # [BackboneSplit | None] once asked

    # ------------------------------------------------------------------ forward
    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Loss dict in training mode, detections in eval mode (module docstring)."""
        if self.training:
            if targets is None:
                raise ValueError(f"{self.name}: training mode needs targets (one per image)")
            if len(targets) != len(images):
                raise ValueError(f"{self.name}: {len(images)} images but {len(targets)} targets")
            losses = self.model(images, [self._to_model(i, t) for i, t in enumerate(targets)])
            return self.weigh_losses(losses)
        return [self._from_model(d) for d in self.model(images)]

    def weigh_losses(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Multiply classification / localization terms by their weights (others by 1)."""
        out = {}
        for key, value in losses.items():
            if key in CLASSIFICATION_KEYS:
                value = value * self.classification_weight
            elif key in LOCALIZATION_KEYS:
                value = value * self.localization_weight
            out[key] = value
        return out

    @torch.no_grad()
    def validation_losses(
        self, images: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Weighted losses on held-out data without touching BatchNorm statistics.

        torchvision detectors compute losses only in training mode; this runs that path
        with every BatchNorm and Dropout layer in eval mode and no gradients, then restores
        the previous mode (for the eval − train loss gap of seed 004).
        """
        was_training = self.training
        self.train()
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.Dropout):
                m.eval()
        try:
            out = self(images, targets)
        finally:
            self.train(was_training)
        assert isinstance(out, dict)
        return out

    def _to_model(self, index: int, target: Mapping[str, Any]) -> dict[str, Tensor]:
        boxes = torch.as_tensor(target.get("boxes", []), dtype=torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(target.get("labels", []), dtype=torch.int64).reshape(-1)
        if labels.numel() != boxes.shape[0]:
            raise DatasetError(
                f"{self.name}: target {index} has {boxes.shape[0]} boxes but {labels.numel()} labels"
            )
        bad = (labels < 0) | (labels >= self.num_classes)
        if bad.any():
            raise DatasetError(
                f"{self.name}: target {index} has label {int(labels[bad][0])} but the model has "
                f"{self.num_classes} classes (0..{self.num_classes - 1}); build the detector with "
                "num_classes equal to the dataset's class count"
            )
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if not keep.all():
            dropped = int((~keep).sum())
            self.degenerate_dropped += dropped
            log.debug("%s: dropped %d degenerate boxes of target %d", self.name, dropped, index)
            boxes, labels = boxes[keep], labels[keep]
        device = _device_of(target.get("boxes"))
        return {"boxes": boxes.to(device), "labels": (labels + self.label_offset).to(device)}

    def _from_model(self, det: dict[str, Tensor]) -> dict[str, Tensor]:
        keep = det["labels"] >= self.label_offset  # RetinaNet/FCOS may score the background slot
        return {
            "boxes": det["boxes"][keep],
            "scores": det["scores"][keep],
            "labels": det["labels"][keep] - self.label_offset,
        }

    # ------------------------------------------------------------------ backbone
    def backbone_split(self) -> Any:
        """The frozen-trunk / trainable-neck split of an SSD-family detector, or None
        (a :class:`~cvpipe.models.detection_split.BackboneSplit`; see that module)."""
        if not self._split:
            from cvpipe.models.detection_split import extractor_split

            backbone = getattr(self.model, "backbone", None)
            fixed = getattr(getattr(self.model, "transform", None), "fixed_size", None)
            ok = isinstance(backbone, nn.Module) and fixed is not None
            self._split.append(extractor_split(backbone) if ok and backbone is not None else None)
        return self._split[0]

    def trunk_pattern(self) -> str | None:
        """The :func:`freeze_backbone` pattern of the trunk (``freeze: frozen``), or None."""
        split = self.backbone_split()
        if split is None:
            return None
        return r"^model\.backbone\.(" + "|".join(re.escape(p) for p in split.prefixes) + ")"

    # ------------------------------------------------------------------ settings
    def set_postprocess(
        self,
        *,
        score_thresh: float | None = None,
        nms_iou: float | None = None,
        detections_per_img: int | None = None,
    ) -> None:
        """Change the inference score threshold, NMS IoU or maximum detections in place."""
        target: Any = getattr(self.model, "roi_heads", self.model)
        if score_thresh is not None:
            target.score_thresh = float(score_thresh)
        if nms_iou is not None:
            target.nms_thresh = float(nms_iou)
        if detections_per_img is not None:
            target.detections_per_img = int(detections_per_img)

    def postprocess_settings(self) -> dict[str, float]:
        target: Any = getattr(self.model, "roi_heads", self.model)
        return {
            "score_thresh": float(target.score_thresh),
            "nms_iou": float(target.nms_thresh),
            "detections_per_img": int(target.detections_per_img),
        }

    def card(self) -> dict[str, Any]:
        """JSON-safe description for model cards."""
        transform: Any = self.model.transform
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "input_size": self.input_size,
            "label_offset": self.label_offset,
            "classification_weight": self.classification_weight,
            "localization_weight": self.localization_weight,
            "image_mean": [float(v) for v in transform.image_mean],
            "image_std": [float(v) for v in transform.image_std],
            "backbone_weights": dict(self.weights_info),
            **self.postprocess_settings(),
        }

    def train(self, mode: bool = True) -> Detector:
        """Like ``nn.Module.train``, but modules frozen by :func:`freeze_backbone` stay in eval."""
        super().train(mode)
        for name in self._frozen_modules:
            self.get_submodule(name).eval()
        return self


def _device_of(value: Any) -> torch.device:
    return value.device if isinstance(value, Tensor) else torch.device("cpu")


# ---------------------------------------------------------------------- freezing
def freeze_backbone(model: nn.Module, pattern: str) -> list[str]:
    """Freeze (``requires_grad=False``) every parameter whose name matches ``pattern``.

    Names are those of ``model.named_parameters()`` and are matched with ``re.search``,
    e.g. ``r"backbone\\.body\\.(conv1|bn1|layer1)\\."`` freezes a ResNet stem and first
    stage, ``r"^model\\.backbone\\."`` a whole backbone. BatchNorm layers whose parameters
    are all frozen also keep their running statistics: on a :class:`Detector` they stay
    in eval mode under ``model.train()``.

    Returns:
        The frozen parameter names.

    Raises:
        ConfigError: the pattern is not a valid regex or matches no parameter (the message
            shows a few names to write one against).
    """
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"freeze pattern {pattern!r} is not a valid regex: {exc}") from None
    names = [n for n, _ in model.named_parameters()]
    frozen = []
    for n, p in model.named_parameters():
        if rx.search(n):
            p.requires_grad_(False)
            frozen.append(n)
    if not frozen:
        sample = ", ".join(names[:3] + names[len(names) // 2 : len(names) // 2 + 2])
        raise ConfigError(
            f"freeze pattern {pattern!r} matches no parameter of the model; names look like: {sample}"
        )
    frozen_set = set(frozen)
    bn_names = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and any(True for _ in m.parameters(recurse=False))
        and all(f"{name}.{p}" in frozen_set for p, _ in m.named_parameters(recurse=False))
    ]
    if isinstance(model, Detector):
        model._frozen_modules = sorted(set(model._frozen_modules) | set(bn_names))
        model.train(model.training)
    else:
        for name in bn_names:
            model.get_submodule(name).eval()
    log.info("froze %d of %d parameters matching %r", len(frozen), len(names), pattern)
    return frozen


def freeze_batchnorm(module: nn.Module) -> None:
    """Replace every BatchNorm2d below ``module`` with a FrozenBatchNorm2d (same statistics)."""
    from torchvision.ops import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            with torch.no_grad():
                frozen.weight.copy_(child.weight)
                frozen.bias.copy_(child.bias)
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
