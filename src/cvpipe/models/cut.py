"""Cut a classifier's backbone at a stage boundary: the frozen stem and the trainable tail.

With ``freeze: last-n`` only the last ``last_n`` stages of the backbone train; everything
before them is a fixed function of the image. :func:`cut_backbone` splits the backbone
there into two modules that share the original layers (no copies, so training the tail
trains the classifier and its checkpoints):

- ``stem``: images ``[N, 3, H, W]`` → the activation entering the first trained stage,
  ``[N, C, h, w]``; every layer in it is frozen (eval mode, no gradients);
- ``tail``: that activation → the pooled, flattened features ``[N, feature_dim]``.

``tail(stem(x)) == backbone(x)`` is checked on a random batch in eval mode when the cut is
made; any difference beyond float32 noise is a :class:`CutError` (the caller falls back
to training on images). The stem is what the feature cache runs once per image
(:mod:`cvpipe.engine.features`), so the tail can be fine-tuned from cached activations.

Supported: timm EfficientNet-family models (``tf_efficientnet_lite0/2``, ``timm/efficientnet_*``),
torchvision MobileNetV2 / MobileNetV3 / EfficientNet and ResNet / ResNeXt; other backbones
raise :class:`CutError` naming the architecture.

Example:
    >>> net = create_classifier("tf_efficientnet_lite0", num_classes=2, freeze="last-n", last_n=3)  # doctest: +SKIP
    >>> cut = cut_backbone(net, 3)  # doctest: +SKIP
    >>> cut.shape  # activations per image at 224 px  # doctest: +SKIP
    (112, 14, 14)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cvpipe.errors import CvpipeError

CHECK_TOL = 1e-4  # |tail(stem(x)) - backbone(x)| <= CHECK_TOL * max(1, max |backbone(x)|)


class CutError(CvpipeError):
    """The backbone cannot be cut into a frozen stem and a trainable tail."""


@dataclass
class Cut:
    """A backbone cut after its first ``at`` stages.

    Attributes:
        stem: frozen layers, images → activations.
        tail: trainable layers, activations → pooled features.
        at: number of frozen stages (``len(stages) - last_n``).
        shape: per-image activation shape ``(C, h, w)`` at the model's input size.
        name: ``"<model>[:<at>]"``, what the feature cache keys the stem by.
    """

    stem: nn.Module
    tail: nn.Module
    at: int
    shape: tuple[int, ...]
    name: str


def _ops(backbone: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The backbone's forward as an ordered list of ``(name, module)``, or None if unknown.

    Names are those of ``backbone.named_modules()`` (so they match the stage lists);
    synthetic pooling steps are named ``""`` and belong to the stage before them.
    """
    kind = type(backbone).__name__
    pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    if kind == "EfficientNet" and hasattr(backbone, "conv_stem"):  # timm
        b: Any = backbone
        if not isinstance(b.classifier, nn.Identity):
            return None
        ops = [("conv_stem", b.conv_stem), ("bn1", b.bn1)]
        ops += [(f"blocks.{i}", m) for i, m in enumerate(b.blocks)]
        ops += [("conv_head", b.conv_head), ("bn2", b.bn2), ("global_pool", b.global_pool)]
        if float(getattr(b, "drop_rate", 0.0)) > 0:
            ops.append(("", nn.Dropout(float(b.drop_rate))))
        return ops
    if kind in ("MobileNetV2", "EfficientNet") and hasattr(backbone, "features"):  # torchvision
        tv: Any = backbone
        if not isinstance(getattr(tv, "classifier", None), nn.Identity):
            return None
        return [(f"features.{i}", m) for i, m in enumerate(tv.features)] + [("", pool)]
    if kind == "MobileNetV3" and hasattr(backbone, "features"):  # torchvision, pre-logits kept
        feats: Any = backbone.features
        ops = [(f"features.{i}", m) for i, m in enumerate(feats)]
        return (
            ops
            + [("avgpool", backbone.avgpool), ("", nn.Flatten(1))]
            + [("classifier", backbone.classifier)]
        )
    if kind == "ResNet":
        r: Any = backbone
        if not isinstance(r.fc, nn.Identity):
            return None
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return [(n, getattr(r, n)) for n in names] + [("avgpool", r.avgpool), ("", nn.Flatten(1))]
    return None


def _stage_of(ops: list[tuple[str, nn.Module]], stages: list[list[str]]) -> list[int]:
    """Stage index of each op; parameter-free ops not in any stage join the one before."""
    where = {name: i for i, stage in enumerate(stages) for name in stage}
    out, current = [], 0
    for name, _ in ops:
        current = where.get(name, current)
        out.append(current)
    return out


def cut_backbone(net: Any, last_n: int, input_size: int | None = None) -> Cut:
    """Split ``net.backbone`` before its last ``last_n`` stages.

    Args:
        net: a :class:`~cvpipe.models.classification.ClassifierNet`.
        last_n: trailing stages that train (1..number of stages - 1).
        input_size: input side for the equivalence check and ``shape`` (default the
            model's preprocessing size).

    Returns:
        A :class:`Cut` whose modules share the backbone's layers.

    Raises:
        CutError: unsupported architecture, ``last_n`` leaving no frozen stage, or a
            stem + tail that does not reproduce the backbone.
    """
    ops = _ops(net.backbone)
    if ops is None:
        raise CutError(
            f"{net.name}: no stem/tail cut known for {type(net.backbone).__name__} backbones "
            "(supported: timm EfficientNet family, torchvision MobileNet/EfficientNet, ResNet)"
        )
    at = len(net.stages) - last_n
    if not 1 <= at < len(net.stages):
        raise CutError(
            f"{net.name}: last_n={last_n} leaves no frozen stage to cache "
            f"(use 1..{len(net.stages) - 1})"
        )
    owner = _stage_of(ops, net.stages)
    stem = nn.Sequential(*[m for (_, m), s in zip(ops, owner, strict=True) if s < at])
    tail = nn.Sequential(*[m for (_, m), s in zip(ops, owner, strict=True) if s >= at])
    if not len(stem) or not len(tail):
        raise CutError(f"{net.name}: cutting before stage {at} leaves an empty stem or tail")
    size = input_size or net.preprocess.input_size
    shape = _check(net, stem, tail, size)
    return Cut(stem, tail, at, shape, f"{net.name}[:{at}]")


@torch.no_grad()
def _check(net: Any, stem: nn.Module, tail: nn.Module, size: int) -> tuple[int, ...]:
    """``tail(stem(x))`` against ``backbone(x)`` in eval mode; returns the stem's shape."""
    was = net.training
    net.eval()
    try:
        param = next(net.parameters())
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, size, size, generator=g).to(param.device)
        ref = net.backbone(x)
        mid = stem(x)
        got = tail(mid)
    finally:
        net.train(was)
    scale = max(1.0, float(ref.abs().max()))
    diff = float((got - ref).abs().max()) if got.shape == ref.shape else float("inf")
    if diff > CHECK_TOL * scale:
        raise CutError(
            f"{net.name}: stem + tail differ from the backbone by {diff:.2e} "
            f"(tolerance {CHECK_TOL * scale:.1e}); the cut does not reproduce its forward"
        )
    return tuple(int(s) for s in mid.shape[1:])
