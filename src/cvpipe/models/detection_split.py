"""Which part of a detector is its backbone: the trunk that ``freeze: frozen`` fixes and the
feature cache runs once per image, and the neck that keeps training.

An SSD's feature extractor (``detector.model.backbone``) is split in two:

- the **trunk**: a module ``[N, 3, S, S]`` normalised images → a list of feature maps
  (the classifier network: ImageNet weights, frozen by ``freeze: frozen``);
- the **neck**: a module ``list of trunk maps`` → the ``OrderedDict`` of maps the SSD head
  reads (extra layers, FPN), trained with the head.

``neck(trunk(x))`` equals ``backbone(x)`` exactly. Per extractor:

==========================================  ===================================  =========================
extractor (detectors)                       trunk maps                           neck
==========================================  ===================================  =========================
``MobileNetV2SSDLiteFeatures``              C4 expansion (576 ch, S/16),         4 SSDLite extra blocks
(``ssdlite320_mobilenet_v2``)               C5 (1280 ch, S/32)
``SSDLiteFeatureExtractorMobileNet``        C4 expansion, C5                     4 SSDLite extra blocks
(``ssdlite320_mobilenet_v3_large``)
``ResNetSSDFeatures`` (``ssd512_resnet50``)  layer3 (1024 ch), layer4 (2048 ch)   4 SSD extra blocks
``MobileNetV2FPNLiteFeatures``              C3, C4, C5 (32/96/1280 ch)           FPN-lite (P3-P7)
(``ssdlite320_mobilenet_v2_fpnlite``)
``SSDFeatureExtractorVGG`` (``ssd300_vgg16``)  conv4_3 (512 ch, S/8)             L2 norm + fc6/fc7 + extras
==========================================  ===================================  =========================

A new extractor plugs in by defining ``split() -> BackboneSplit`` itself (checked first),
or by an entry in :data:`SPLITTERS` keyed by its class. Detectors whose extractor has
neither (R-CNN, RetinaNet, FCOS: variable input sizes) have no split:
:func:`backbone_split` returns None.

Example:
    >>> split = backbone_split(create_detector("ssdlite320_mobilenet_v2", num_classes=1))  # doctest: +SKIP
    >>> maps = split.trunk(x); feats = split.neck(maps)  # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from cvpipe.models import ssd_backbones as ssd


@dataclass(frozen=True)
class BackboneSplit:
    """A detector's feature extractor cut into a frozen trunk and a trainable neck.

    Attributes:
        trunk: ``[N, 3, S, S]`` normalised images → ``list[Tensor]`` maps (shares the
            extractor's parameters).
        neck: ``list[Tensor]`` maps → ``OrderedDict[str, Tensor]`` for the head.
        prefixes: parameter-name prefixes of the trunk relative to the extractor
            (``features.``): what ``freeze: frozen`` freezes.
    """

    trunk: nn.Module
    neck: nn.Module
    prefixes: tuple[str, ...]


class StagesTrunk(nn.Module):
    """Runs ``stages`` in order and returns every stage's output."""

    def __init__(self, stages: nn.Sequential) -> None:
        super().__init__()
        self.stages = stages

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class LayerGetterTrunk(nn.Module):
    """An ``IntermediateLayerGetter``'s maps as a list (in its return order)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.body(x).values())


class ExtraNeck(nn.Module):
    """SSD extra layers chained on the last trunk map; returns trunk maps + extra maps.

    Args:
        extra: the extra blocks.
        first: optional map applied to the first trunk map only (VGG's L2 norm).
    """

    def __init__(self, extra: nn.ModuleList, first: nn.Module | None = None) -> None:
        super().__init__()
        self.extra = extra
        self.first = first

    def forward(self, maps: Sequence[Tensor]) -> OrderedDict[str, Tensor]:
        out = list(maps)
        x = out[-1]
        if self.first is not None:
            out[0] = self.first(out[0])
        for block in self.extra:
            x = block(x)
            out.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(out))


class FPNNeck(nn.Module):
    """An FPN over the trunk maps."""

    def __init__(self, fpn: nn.Module) -> None:
        super().__init__()
        self.fpn = fpn

    def forward(self, maps: Sequence[Tensor]) -> OrderedDict[str, Tensor]:
        return OrderedDict((str(i), v) for i, v in enumerate(self.fpn(list(maps))))


class VGGL2Norm(nn.Module):
    """SSD300's rescaled L2 normalisation of conv4_3 (shares the extractor's weight)."""

    def __init__(self, owner: nn.Module) -> None:
        super().__init__()
        self.owner = [owner]  # not a submodule: the weight stays the extractor's

    def forward(self, x: Tensor) -> Tensor:
        weight = self.owner[0].scale_weight
        assert isinstance(weight, Tensor)
        return weight.view(1, -1, 1, 1) * F.normalize(x)


def _stages_split(ext: Any) -> BackboneSplit:
    return BackboneSplit(StagesTrunk(ext.features), ExtraNeck(ext.extra), ("features.",))


def _resnet_split(ext: Any) -> BackboneSplit:
    return BackboneSplit(LayerGetterTrunk(ext.body), ExtraNeck(ext.extra), ("body.",))


def _fpn_split(ext: Any) -> BackboneSplit:
    return BackboneSplit(LayerGetterTrunk(ext.body), FPNNeck(ext.fpn), ("body.",))


def _vgg_split(ext: Any) -> BackboneSplit:
    trunk = StagesTrunk(nn.Sequential(ext.features))
    return BackboneSplit(trunk, ExtraNeck(ext.extra, VGGL2Norm(ext)), ("features.",))


def _splitters() -> dict[type, Callable[[Any], BackboneSplit]]:
    from torchvision.models.detection.ssd import SSDFeatureExtractorVGG
    from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet

    return {
        ssd.MobileNetV2SSDLiteFeatures: _stages_split,
        SSDLiteFeatureExtractorMobileNet: _stages_split,
        ssd.ResNetSSDFeatures: _resnet_split,
        ssd.MobileNetV2FPNLiteFeatures: _fpn_split,
        SSDFeatureExtractorVGG: _vgg_split,
    }


SPLITTERS: dict[type, Callable[[Any], BackboneSplit]] = _splitters()


def extractor_split(extractor: nn.Module) -> BackboneSplit | None:
    """The split of an SSD feature extractor (its own ``split()`` first), or None."""
    own = getattr(extractor, "split", None)
    if callable(own):
        got = own()
        return got if isinstance(got, BackboneSplit) else None
    fn = SPLITTERS.get(type(extractor))
    return fn(extractor) if fn is not None else None


@torch.no_grad()
def trunk_shapes(trunk: nn.Module, size: int) -> list[tuple[int, ...]]:
    """``(C, H, W)`` of each trunk map for one ``size`` × ``size`` image (eval mode)."""
    was = trunk.training
    trunk.eval()
    try:
        p = next(trunk.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
        maps = trunk(torch.zeros(1, 3, size, size, device=device))
    finally:
        trunk.train(was)
    return [tuple(int(v) for v in m.shape[1:]) for m in maps]


def forward_from_trunk(
    det: Any,
    maps: Sequence[Tensor],
    targets: list[dict[str, Tensor]] | None = None,
    original_sizes: Sequence[tuple[int, int]] | None = None,
) -> Any:
    """A :class:`~cvpipe.models.detector.Detector`'s forward from its trunk's maps.

    What ``det(images, targets)`` computes after the trunk, for images already resized to
    the detector's ``S`` × ``S`` input: neck, head, default boxes, then the weighted
    losses (training mode) or the detections (eval mode).

    Args:
        det: an SSD-family detector with a :meth:`~Detector.backbone_split`.
        maps: the trunk's maps, ``[N, C, H, W]`` each.
        targets: training mode: one per image, dataset labels, boxes in ``S`` × ``S``
            input pixels.
        original_sizes: eval mode: ``(height, width)`` per image that the detections'
            boxes are mapped back to (default ``S`` × ``S``).

    Returns:
        The weighted loss dict (training) or one detection dict per image (eval).
    """
    from torchvision.models.detection.image_list import ImageList
    from torchvision.ops import boxes as box_ops

    split = det.backbone_split()
    model = det.model
    size = int(det.input_size)
    n = int(maps[0].shape[0])
    features = list(split.neck(list(maps)).values())
    head_outputs = model.head(features)
    # the default boxes read only the batch's image size: a stand-in without memory
    images = ImageList(maps[0].new_zeros(1, 1, 1, 1).expand(n, 3, size, size), [(size, size)] * n)
    anchors = model.anchor_generator(images, features)
    if det.training:
        if targets is None or len(targets) != n:
            raise ValueError(f"{det.name}: training mode needs one target per image")
        tgts = [det._to_model(i, t) for i, t in enumerate(targets)]
        matched = []
        for anc, tgt in zip(anchors, tgts, strict=True):
            if tgt["boxes"].numel() == 0:
                matched.append(torch.full((anc.size(0),), -1, dtype=torch.int64, device=anc.device))
                continue
            matched.append(model.proposal_matcher(box_ops.box_iou(tgt["boxes"], anc)))
        return det.weigh_losses(model.compute_loss(tgts, head_outputs, anchors, matched))
    sizes = [(size, size)] * n
    dets = model.postprocess_detections(head_outputs, anchors, sizes)
    dets = model.transform.postprocess(dets, sizes, list(original_sizes or sizes))
    return [det._from_model(d) for d in dets]
