"""Image classifiers: a backbone giving pooled features, a head giving logits.

Every model is a :class:`ClassifierNet` built by a keyword-only builder registered in
:data:`MODELS` (torchvision and timm architectures, seed 001's custom CNN, seed 003's base
CNN); any other timm architecture is available as ``"timm/<name>"``. Builders never
download anything: networks are constructed with ``weights=None`` / ``pretrained=False``
and pretrained weights are resolved by :mod:`cvpipe.models.weights` (offline first).

Example:
    >>> net = create_classifier("resnet50", num_classes=5, head=HeadSpec(hidden=[128]),
    ...                         weights="imagenet", freeze="frozen")  # doctest: +SKIP
    >>> net(torch.zeros(2, 3, 224, 224)).shape  # doctest: +SKIP
    torch.Size([2, 5])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from cvpipe.errors import ConfigError, UnknownNameError
from cvpipe.models.custom_cnn import (
    BASE_CNN_HEAD,
    CUSTOM_CNN_FEATURES,
    CUSTOM_CNN_HEAD,
    BaseCNNBackbone,
    CustomCNNBackbone,
)
from cvpipe.models.heads import HeadSpec, build_head
from cvpipe.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from cvpipe.registry import Registry, suggest

log = logging.getLogger(__name__)

FreezeMode = Literal["frozen", "last-n", "full"]
FREEZE_MODES = ("frozen", "last-n", "full")
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


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``cvpipe models``."""

    name: str
    family: str
    params: int  # backbone + default head for 1000 classes (the ImageNet convention)
    backbone_params: int
    feature_dim: int
    input_size: int
    weights: str | None  # where ImageNet weights resolve offline, or None


class ClassifierNet(nn.Module):
    """``head(backbone(x))``: images ``[N, 3, H, W]`` → logits ``[N, num_classes]``.

    Attributes:
        backbone: images → pooled, flattened features ``[N, feature_dim]``.
        head: features → logits.
        feature_dim: D.
        preprocess: the eval-time preprocessing the backbone expects.
        name: the registered model name.
        stages: backbone stages (lists of module names), first to last.
        weights_info: where the backbone weights came from (``{"source": "none"}`` for
            random init), including a sha256 when loaded from a file.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        feature_dim: int,
        preprocess: Preprocess,
        name: str,
        stages: list[list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = feature_dim
        self.preprocess = preprocess
        self.name = name
        self.stages = stages or [[n for n, _ in backbone.named_children()]]
        self.weights_info: dict[str, Any] = {"source": "none"}
        self.freeze_mode: str = "full"
        self._frozen_modules: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def freeze(self, mode: str, last_n: int = 1) -> None:
        """Choose which backbone parameters train; the head always trains.

        Args:
            mode: ``frozen`` (backbone fixed: no gradients, BatchNorm statistics and
                dropout kept in eval mode even under ``model.train()``), ``last-n`` (only
                the last ``last_n`` stages of the backbone train; earlier ones frozen as
                above) or ``full`` (everything trains).
            last_n: number of trailing stages to train in ``last-n`` mode.

        Raises:
            ConfigError: unknown mode or ``last_n`` outside 1..number of stages.
        """
        if mode not in FREEZE_MODES:
            hint = suggest(mode, FREEZE_MODES)
            raise ConfigError(
                f"freeze: unknown mode {mode!r}; {hint}valid: {', '.join(FREEZE_MODES)}"
            )
        n_stages = len(self.stages)
        if mode == "last-n" and not 1 <= last_n <= n_stages:
            raise ConfigError(
                f"freeze: last_n={last_n} but {self.name} has {n_stages} backbone stages; use 1..{n_stages}"
            )
        for p in self.parameters():
            p.requires_grad_(True)
        self._frozen_modules = []
        if mode == "frozen":
            self._frozen_modules = [""]
        elif mode == "last-n":
            self._frozen_modules = [n for stage in self.stages[: n_stages - last_n] for n in stage]
        trainable = (
            {n for stage in self.stages[n_stages - last_n :] for n in stage}
            if mode == "last-n"
            else set()
        )
        if mode != "full":
            for pname, p in self.backbone.named_parameters():
                if not any(pname == t or pname.startswith(t + ".") for t in trainable):
                    p.requires_grad_(False)
        self.freeze_mode = mode
        self.train(self.training)

    def train(self, mode: bool = True) -> ClassifierNet:
        """Like ``nn.Module.train`` but frozen backbone parts stay in eval mode."""
        super().train(mode)
        for name in self._frozen_modules:
            self.backbone.get_submodule(name).eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters with ``requires_grad`` (what the optimizer should get)."""
        return [p for p in self.parameters() if p.requires_grad]

    def frozen_batchnorms(self) -> Iterator[nn.Module]:
        """BatchNorm layers whose running statistics are kept fixed."""
        for name in self._frozen_modules:
            for m in self.backbone.get_submodule(name).modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    yield m


MODELS: Registry[Callable[..., ClassifierNet]] = Registry("model")
MODEL_META: dict[str, ModelMeta] = {}


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
def _default_preprocess(meta: ModelMeta) -> Preprocess:
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
        return Backbone(CustomCNNBackbone(), CUSTOM_CNN_FEATURES, stages), _default_preprocess(meta)
    if meta.name == "base_cnn":
        stages = [[f"blocks.{i}"] for i in range(4)]
        return Backbone(
            BaseCNNBackbone(), BaseCNNBackbone.feature_dim, stages
        ), _default_preprocess(meta)
    if meta.family == "timm":
        backbone, cfg = timm_backbone(meta.source)
        return backbone, timm_preprocess(cfg)
    return torchvision_backbone(meta.source), Preprocess()


def _assemble(
    meta: ModelMeta,
    *,
    weights: str | None,
    num_classes: int,
    head: HeadSpec | None,
    input_size: int | None,
) -> ClassifierNet:
    if num_classes < 1:
        raise ConfigError(f"{meta.name}: num_classes must be >= 1, got {num_classes}")
    backbone, preprocess = build_backbone(meta)
    if input_size is not None and input_size != preprocess.input_size:
        if meta.fixed_input:
            raise ConfigError(
                f"{meta.name} takes {preprocess.input_size} px inputs only (got input_size={input_size}); "
                "leave input_size unset"
            )
        preprocess = preprocess.with_input_size(input_size)
    spec = head if head is not None else meta.default_head
    net = ClassifierNet(
        backbone.module,
        build_head(backbone.feature_dim, num_classes, spec),
        backbone.feature_dim,
        preprocess,
        meta.name,
        backbone.stages,
    )
    if weights is None or str(weights).lower() == "none":
        log.info("%s: backbone randomly initialised (weights=None)", meta.name)
        return net
    if str(weights).lower() == "coco":
        raise ConfigError(
            f"{meta.name}: weights 'coco' are for detectors; a classifier takes imagenet, none or a file"
        )
    from cvpipe.models.weights import load_backbone_weights, resolve

    explicit = None if str(weights).lower() in ("imagenet", "default") else str(weights)
    resolved = resolve(meta.name, explicit=explicit)
    report = load_backbone_weights(
        net.backbone,
        resolved.state_dict,
        backbone,
        model=meta.name,
        source=resolved.describe(),
        in_order=resolved.source.in_order,
    )
    net.weights_info = {**resolved.info(), "loaded_keys": report.loaded}
    return net


def register_model(
    name: str,
    family: str,
    source: str = "",
    default_head: HeadSpec | None = None,
    fixed_input: bool = False,
) -> None:
    """Register a keyword-only builder ``name(*, weights=None, num_classes, head=None, input_size=None)``."""
    meta = ModelMeta(name, family, source, default_head or HeadSpec(), fixed_input)

    def builder(
        *,
        weights: str | None = None,
        num_classes: int,
        head: HeadSpec | None = None,
        input_size: int | None = None,
    ) -> ClassifierNet:
        return _assemble(
            meta, weights=weights, num_classes=num_classes, head=head, input_size=input_size
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (
        f"Build {name} ({family}{': ' + source if source else ''}) as a ClassifierNet."
    )
    MODELS.add(name, builder)
    MODEL_META[name] = meta


TORCHVISION_MODELS = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d",
    "vgg16", "vgg16_bn",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "efficientnet_b0",
)  # fmt: skip
TIMM_MODELS = ("tf_efficientnet_lite0", "tf_efficientnet_lite2")

for _arch in TORCHVISION_MODELS:
    register_model(_arch, "torchvision", _arch)
for _arch in TIMM_MODELS:
    register_model(_arch, "timm", _arch)
register_model("custom_cnn", "custom", default_head=CUSTOM_CNN_HEAD, fixed_input=True)
register_model("base_cnn", "custom", default_head=BASE_CNN_HEAD)


def model_meta(name: str) -> ModelMeta:
    """Facts about a registered model or a ``timm/<arch>`` name.

    Raises:
        UnknownNameError: unknown name, with close matches.
    """
    if name.startswith(TIMM_PREFIX):
        return ModelMeta(name, "timm", name[len(TIMM_PREFIX) :])
    MODELS.get(name)  # raises with suggestions
    return MODEL_META[name]


def create_classifier(
    name: str,
    *,
    num_classes: int,
    weights: str | None = None,
    head: HeadSpec | None = None,
    freeze: str = "full",
    last_n: int = 1,
    input_size: int | None = None,
) -> ClassifierNet:
    """Build a classifier by name.

    Args:
        name: a registered name (see ``cvpipe models``) or ``"timm/<arch>"``.
        num_classes: number of output logits.
        weights: ``None`` (or ``"none"``) for random init (logged); ``"imagenet"`` /
            ``"default"`` to resolve ImageNet weights offline; or a weights file path.
        head: the head spec (default: a single linear layer; seed 001's five linear
            layers for ``custom_cnn``).
        freeze: ``frozen`` | ``last-n`` | ``full`` (see :meth:`ClassifierNet.freeze`).
        last_n: stages trained in ``last-n`` mode.
        input_size: square input side; default the model's own.

    Returns:
        The :class:`ClassifierNet`, in train mode.

    Raises:
        UnknownNameError: unknown model name.
        WeightsNotFoundError: weights requested but not available offline.
        CheckpointError: a weights file does not fit the model.
        ConfigError: invalid freeze mode, input size or class count.
    """
    meta = model_meta(name)
    if name.startswith(TIMM_PREFIX):
        net = _assemble(
            meta, weights=weights, num_classes=num_classes, head=head, input_size=input_size
        )
    else:
        net = MODELS.get(name)(
            weights=weights, num_classes=num_classes, head=head, input_size=input_size
        )
    net.freeze(freeze, last_n)
    return net


_PARAM_COUNTS: dict[str, tuple[int, int, int]] = {}


def count_params(name: str) -> tuple[int, int, int]:
    """(total params with the default head for 1000 classes, backbone params, feature_dim).

    Built on the meta device (no memory, no initialisation) and cached per process.
    """
    if name not in _PARAM_COUNTS:
        meta = model_meta(name)
        with torch.device("meta"):
            backbone, _ = build_backbone(meta)
            head = build_head(backbone.feature_dim, 1000, meta.default_head)
        body = sum(p.numel() for p in backbone.module.parameters())
        total = body + sum(p.numel() for p in head.parameters())
        _PARAM_COUNTS[name] = (total, body, backbone.feature_dim)
    return _PARAM_COUNTS[name]


def list_models(pattern: str | None = None) -> list[ModelInfo]:
    """Registered models matching a shell-style ``pattern`` (e.g. ``"resnet*"``).

    Returns:
        One :class:`ModelInfo` per model: family, backbone parameters, feature dimension,
        default input size and where ImageNet weights resolve offline (None if nowhere).
    """
    from cvpipe.models.weights import find_sources

    infos = []
    for name in MODELS.names(pattern):
        meta = MODEL_META[name]
        params, body, dim = count_params(name)
        sources = find_sources(name)
        infos.append(
            ModelInfo(
                name=name,
                family=meta.family,
                params=params,
                backbone_params=body,
                feature_dim=dim,
                input_size=_default_preprocess(meta).input_size,
                weights=sources[0].kind if sources else None,
            )
        )
    return infos
