"""Image classifiers: a backbone giving pooled features, a head giving logits.

Every model is a :class:`ClassifierNet` built by a keyword-only builder registered in
:data:`MODELS`, one per architecture of :mod:`cvpipe.models.backbones` (torchvision and
timm architectures, seed 001's custom CNN, seed 003's base CNN); any other timm
architecture is available as ``"timm/<name>"``. Builders never download anything:
networks are constructed with ``weights=None`` / ``pretrained=False`` and pretrained
weights are resolved by :mod:`cvpipe.models.weights` (offline first).

Example:
    >>> net = create_classifier("resnet50", num_classes=5, head=HeadSpec(hidden=[128]),
    ...                         weights="imagenet", freeze="frozen")  # doctest: +SKIP
    >>> net(torch.zeros(2, 3, 224, 224)).shape  # doctest: +SKIP
    torch.Size([2, 5])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from cvpipe.errors import ConfigError
from cvpipe.models.backbones import (
    MODEL_META,
    TIMM_PREFIX,
    ModelMeta,
    build_backbone,
    default_preprocess,
    model_meta,
)
from cvpipe.models.heads import HeadSpec, build_head
from cvpipe.models.preprocess import Preprocess
from cvpipe.models.weight_sources import find_sources
from cvpipe.models.weights import load_backbone_weights, resolve
from cvpipe.registry import Registry, suggest

log = logging.getLogger(__name__)

FreezeMode = Literal["frozen", "last-n", "full"]
FREEZE_MODES = ("frozen", "last-n", "full")


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


def _add_builder(meta: ModelMeta) -> None:
    """Register ``meta``'s keyword-only builder in :data:`MODELS`."""

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

    source = f": {meta.source}" if meta.source else ""
    builder.__name__ = builder.__qualname__ = meta.name
    builder.__doc__ = f"Build {meta.name} ({meta.family}{source}) as a ClassifierNet."
    MODELS.add(meta.name, builder)


def register_model(
    name: str,
    family: str,
    source: str = "",
    default_head: HeadSpec | None = None,
    fixed_input: bool = False,
) -> None:
    """Register a keyword-only builder ``name(*, weights=None, num_classes, head=None, input_size=None)``."""
    meta = ModelMeta(name, family, source, default_head or HeadSpec(), fixed_input)
    MODEL_META.add(name, meta)
    _add_builder(meta)


for _name in MODEL_META.names():
    _add_builder(MODEL_META.get(_name))


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
    infos = []
    for name in MODELS.names(pattern):
        meta = MODEL_META.get(name)
        params, body, dim = count_params(name)
        sources = find_sources(name)
        infos.append(
            ModelInfo(
                name=name,
                family=meta.family,
                params=params,
                backbone_params=body,
                feature_dim=dim,
                input_size=default_preprocess(meta).input_size,
                weights=sources[0].kind if sources else None,
            )
        )
    return infos
