"""Classifier architectures: what is registered, and their randomly initialised backbones.

A registered model is a :class:`ModelMeta` in :data:`MODEL_META` (torchvision and timm
architectures, seed 001's custom CNN, seed 003's base CNN; any other timm architecture
is ``"timm/<name>"``, see :func:`model_meta`). :func:`build_backbone` builds its feature
extractor (:class:`Backbone`) and eval preprocessing without ever downloading anything:
networks are constructed with ``weights=None`` / ``pretrained=False``. Pretrained weights
are found by :mod:`cvpipe.models.weights`; the classifier (backbone + head) is built by
:mod:`cvpipe.models.classification`.

Example:
    >>> model_meta("resnet50").family
    'torchvision'
    >>> backbone, preprocess = build_backbone(model_meta("resnet18"))  # doctest: +SKIP
    >>> backbone.feature_dim  # doctest: +SKIP
    512
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cvpipe.errors import UnknownNameError
from cvpipe.models.custom_cnn import (
    BASE_CNN_HEAD,
    CUSTOM_CNN_FEATURES,
    CUSTOM_CNN_HEAD,
    BaseCNNBackbone,
    CustomCNNBackbone,
)
from cvpipe.models.heads import HeadSpec
from cvpipe.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from cvpipe.registry import Registry, suggest

TIMM_PREFIX = "timm/"


@dataclass
class Backbone:
    """A feature extractor and what cvpipe needs to know about it.

    Attributes:
        module: images ``[N, 3, H, W]`` → pooled features ``[N, feature_dim]``. Its
            state_dict keys are those of the original torchvision/timm model minus the
            removed classifier, so original checkpoints load by name.
        feature_dim: D.
        stages: top-level stages, first to last, each a list of module names in
            ``module`` (used by ``freeze("last-n")``).
        head_prefixes: key prefixes of the original model's classifier; such keys in a
            pretrained state_dict are dropped (reported), not errors.
        reference: builds the original full model (used for in-order key mapping);
            called under ``torch.device("meta")``.
    """

    module: nn.Module
    feature_dim: int
    stages: list[list[str]]
    head_prefixes: tuple[str, ...] = ()
    reference: Callable[[], nn.Module] | None = None


@dataclass(frozen=True)
class ModelMeta:
    """Registered facts about a model, known without building it."""

    name: str
    family: str  # torchvision | timm | custom
    source: str  # the torchvision / timm architecture name ("" for custom models)
    default_head: HeadSpec = field(default_factory=HeadSpec)
    fixed_input: bool = False


#: Registered models by name (:func:`cvpipe.models.classification.register_model` adds more).
MODEL_META: Registry[ModelMeta] = Registry("model")

TORCHVISION_MODELS = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d",
    "vgg16", "vgg16_bn",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "efficientnet_b0",
)  # fmt: skip
TIMM_MODELS = ("tf_efficientnet_lite0", "tf_efficientnet_lite2")

for _arch in TORCHVISION_MODELS:
    MODEL_META.add(_arch, ModelMeta(_arch, "torchvision", _arch))
for _arch in TIMM_MODELS:
    MODEL_META.add(_arch, ModelMeta(_arch, "timm", _arch))
MODEL_META.add("custom_cnn", ModelMeta("custom_cnn", "custom", "", CUSTOM_CNN_HEAD, True))
MODEL_META.add("base_cnn", ModelMeta("base_cnn", "custom", "", BASE_CNN_HEAD))


def model_meta(name: str) -> ModelMeta:
    """Facts about a registered model or a ``timm/<arch>`` name.

    Raises:
        UnknownNameError: unknown name, with close matches.
    """
    if name.startswith(TIMM_PREFIX):
        return ModelMeta(name, "timm", name[len(TIMM_PREFIX) :])
    return MODEL_META.get(name)  # raises with suggestions


# --------------------------------------------------------------------------- backbones
def _resnet_stages() -> list[list[str]]:
    return [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]


def _indexed_stages(prefix: str, module: nn.Module) -> list[list[str]]:
    return [[f"{prefix}.{i}"] for i in range(len(list(module.children())))]


def _vgg_backbone(net: Any) -> list[list[str]]:
    """Group VGG's flat ``features`` into its five conv blocks (each ends with a max pool)."""
    stages: list[list[str]] = [[]]
    for i, m in enumerate(net.features):
        stages[-1].append(f"features.{i}")
        if isinstance(m, nn.MaxPool2d):
            stages.append([])
    return [s for s in stages if s]


def _torchvision_full(arch: str) -> Any:
    from torchvision import models

    return models.get_model(arch, weights=None)


def _init_vgg_features(net: nn.Module) -> None:
    for m in net.modules():  # the same initialisation torchvision's VGG uses
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def torchvision_backbone(arch: str) -> Backbone:
    """Build a torchvision architecture (random init, never downloads) without its classifier.

    ResNet/ResNeXt: ``fc`` removed, D = 2048 (512 for resnet18/34). VGG: the three fully
    connected layers removed and the conv features globally average-pooled, D = 512 (the
    14.7M-parameter VGG16 of seed 003). MobileNetV2 and EfficientNet-B0: classifier
    removed, D = 1280. MobileNetV3: the pretrained pre-logits layer (Linear + Hardswish) is
    kept, D = 1024 (small) or 1280 (large).
    """
    if arch.startswith("vgg"):
        # Building VGG's 120M-parameter classifier only to drop it costs seconds: build it
        # on the meta device, strip it, then materialise and initialise the rest.
        with torch.device("meta"):
            net = _torchvision_full(arch)
        net.classifier = nn.Identity()
        net.avgpool = nn.AdaptiveAvgPool2d(1)
        if torch.empty(0).device.type != "meta":  # a meta build (parameter counts) stays empty
            net.to_empty(device="cpu")
            _init_vgg_features(net)
        stages = _vgg_backbone(net)
        return Backbone(net, 512, stages, ("classifier.",), lambda: _torchvision_full(arch))
    net = _torchvision_full(arch)
    if arch.startswith(("resnet", "resnext", "wide_resnet")):
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return Backbone(net, dim, _resnet_stages(), ("fc.",), lambda: _torchvision_full(arch))
    if arch.startswith("mobilenet_v3"):
        pre_logits = net.classifier[0]
        net.classifier = nn.Sequential(pre_logits, net.classifier[1])
        stages = _indexed_stages("features", net.features) + [["classifier"]]
        return Backbone(
            net,
            pre_logits.out_features,
            stages,
            ("classifier.3.",),
            lambda: _torchvision_full(arch),
        )
    if arch.startswith(("mobilenet_v2", "efficientnet")):
        linear = [m for m in net.classifier if isinstance(m, nn.Linear)][-1]
        net.classifier = nn.Identity()
        stages = _indexed_stages("features", net.features)
        return Backbone(
            net, linear.in_features, stages, ("classifier.",), lambda: _torchvision_full(arch)
        )
    raise UnknownNameError(f"no backbone recipe for torchvision architecture {arch!r}")


def _timm_stages(net: nn.Module) -> list[list[str]]:
    """Top-level stages of a timm model: the stem, each block of its main container, the rest."""
    children = [(n, m) for n, m in net.named_children() if any(True for _ in m.parameters())]
    containers = ("blocks", "stages", "layers", "features")
    idx = next((i for i, (n, _) in enumerate(children) if n in containers), None)
    if idx is None:
        return [[n] for n, _ in children]
    name, container = children[idx]
    stages = [[n for n, _ in children[:idx]]] if idx else []
    stages += [[f"{name}.{c}"] for c, _ in container.named_children()]
    rest = [n for n, _ in children[idx + 1 :]]
    return stages + ([rest] if rest else [])


def timm_backbone(arch: str) -> tuple[Backbone, dict[str, Any]]:
    """Build a timm architecture (``pretrained=False``, ``num_classes=0``: pooled features).

    Returns:
        The backbone and timm's pretrained config (input size, mean/std, crop_pct, ...).

    Raises:
        UnknownNameError: ``arch`` is not a timm architecture (with close names).
    """
    import timm

    if not timm.is_model(arch):
        hint = suggest(arch, timm.list_models())
        raise UnknownNameError(
            f"unknown timm model {arch!r}; {hint}see timm.list_models() for valid names"
        )
    net: Any = timm.create_model(arch, pretrained=False, num_classes=0)
    cfg = dict(getattr(net, "pretrained_cfg", {}) or {})
    classifier = cfg.get("classifier") or "classifier"
    prefixes = tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))
    return (
        Backbone(
            net,
            int(net.num_features),
            _timm_stages(net),
            prefixes,
            lambda: timm.create_model(arch, pretrained=False),
        ),
        cfg,
    )


def timm_preprocess(cfg: dict[str, Any]) -> Preprocess:
    """The eval preprocessing timm's pretrained config describes."""
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    interpolation = cfg.get("interpolation") or "bicubic"
    return Preprocess(
        input_size=size,
        resize_size=int(size / crop_pct),
        mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(cfg.get("std") or IMAGENET_STD),
        interpolation=interpolation
        if interpolation in ("nearest", "bilinear", "bicubic")
        else "bicubic",
    )


# --------------------------------------------------------------------------- builders
def default_preprocess(meta: ModelMeta) -> Preprocess:
    if meta.name == "custom_cnn":
        # seed 001: Resize((224, 224)) + ToTensor(): no normalisation. cvpipe's one eval
        # transform resizes the shorter side and centre-crops instead of squashing.
        return Preprocess(
            input_size=224, resize_size=224, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
        )
    if meta.name == "base_cnn":
        return Preprocess(input_size=150, resize_size=150)
    if meta.family == "timm":
        import timm

        cfg = timm.models.get_pretrained_cfg(meta.source)
        return timm_preprocess(cfg.to_dict() if cfg is not None else {})
    return Preprocess()


def build_backbone(meta: ModelMeta) -> tuple[Backbone, Preprocess]:
    """Build the randomly initialised backbone of a registered model and its preprocessing."""
    if meta.name == "custom_cnn":
        stages = [[f"conv{i}"] for i in range(1, 6)]
        return Backbone(CustomCNNBackbone(), CUSTOM_CNN_FEATURES, stages), default_preprocess(meta)
    if meta.name == "base_cnn":
        stages = [[f"blocks.{i}"] for i in range(4)]
        return Backbone(BaseCNNBackbone(), BaseCNNBackbone.feature_dim, stages), default_preprocess(
            meta
        )
    if meta.family == "timm":
        backbone, cfg = timm_backbone(meta.source)
        return backbone, timm_preprocess(cfg)
    return torchvision_backbone(meta.source), Preprocess()
