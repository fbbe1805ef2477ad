"""Image transforms for training and evaluation (torchvision ``transforms.v2``).

Two pipelines, both taking a PIL image and returning a normalised ``float32`` tensor
``[3, S, S]`` where ``S`` is the network input size:

- :func:`eval_transform` — deterministic: resize the shorter side to ``resize_size``,
  centre crop ``input_size``, normalise. Used for validation, evaluation and the
  frozen-feature cache.
- :func:`train_transform` — the augmentations of :class:`AugmentConfig`:
  ``RandomResizedCrop`` or resize + random crop (or the deterministic eval crop),
  horizontal flip, colour jitter, TrivialAugmentWide.

Example:
    >>> from cvpipe.models.preprocess import Preprocess  # doctest: +SKIP
    >>> t = train_transform(Preprocess(input_size=224), AugmentConfig(crop="random-resized"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field
from torchvision.transforms import v2 as T

from cvpipe.config import Config

if TYPE_CHECKING:
    from cvpipe.models.preprocess import Preprocess

CropMode = Literal["center", "random", "random-resized"]

_INTERPOLATION = {
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "nearest": T.InterpolationMode.NEAREST,
}


class AugmentConfig(Config):
    """Training-time augmentation.

    Attributes:
        crop: ``center`` (deterministic resize + centre crop), ``random`` (resize the
            shorter side, then a random ``input_size`` crop) or ``random-resized``
            (``RandomResizedCrop`` with ``scale``).
        scale: area range of ``random-resized`` crops.
        hflip: random horizontal flip (p = 0.5).
        color_jitter: brightness/contrast/saturation strength (0 = off).
        trivial_augment: TrivialAugmentWide.
    """

    crop: CropMode = "center"
    scale: tuple[float, float] = (0.08, 1.0)
    hflip: bool = True
    color_jitter: float = Field(default=0.0, ge=0.0, le=1.0)
    trivial_augment: bool = False

    @property
    def cacheable(self) -> bool:
        """True when every augmentation can be reproduced by cached feature variants."""
        return self.crop == "center" and self.color_jitter == 0 and not self.trivial_augment


def _interp(pre: Preprocess) -> T.InterpolationMode:
    return _INTERPOLATION.get(
        getattr(pre, "interpolation", "bilinear"), T.InterpolationMode.BILINEAR
    )


def _normalize(pre: Preprocess) -> list[Any]:
    return [
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(mean=list(pre.mean), std=list(pre.std)),
    ]


def eval_transform(pre: Preprocess) -> Callable[[Any], torch.Tensor]:
    """Deterministic resize (shorter side) + centre crop + normalise.

    Args:
        pre: the model's preprocessing (input size, resize size, mean, std).

    Returns:
        A callable mapping a PIL image to a ``float32`` tensor ``[3, input_size, input_size]``
        (the model's own :meth:`Preprocess.eval_transform`, so training-time validation,
        evaluation and serving feed identical pixels).
    """
    return pre.eval_transform()


def train_transform(pre: Preprocess, aug: AugmentConfig) -> Callable[[Any], torch.Tensor]:
    """The training pipeline described by ``aug`` for a model with preprocessing ``pre``.

    Args:
        pre: the model's preprocessing.
        aug: augmentation settings.

    Returns:
        A callable mapping a PIL image to a normalised ``float32`` tensor ``[3, S, S]``.
        Randomness comes from torch's global generator (seeded per sample by the loader).
    """
    interp = _interp(pre)
    ops: list[Any] = [T.ToImage()]  # uint8 tensor ops from here on, like Preprocess.eval_transform
    if aug.crop == "random-resized":
        ops.append(
            T.RandomResizedCrop(
                pre.input_size, scale=aug.scale, interpolation=interp, antialias=True
            )
        )
    elif aug.crop == "random":
        ops += [
            T.Resize(pre.resize_size, interpolation=interp, antialias=True),
            T.RandomCrop(pre.input_size),
        ]
    else:
        ops += [
            T.Resize(pre.resize_size, interpolation=interp, antialias=True),
            T.CenterCrop(pre.input_size),
        ]
    if aug.hflip:
        ops.append(T.RandomHorizontalFlip())
    if aug.color_jitter > 0:
        s = aug.color_jitter
        ops.append(T.ColorJitter(brightness=s, contrast=s, saturation=s))
    if aug.trivial_augment:
        ops.append(T.TrivialAugmentWide(interpolation=interp))
    return T.Compose(ops + _normalize(pre))


def draft_size(pre: Preprocess, aug: AugmentConfig | None = None) -> int:
    """The smallest decode size that loses nothing for these transforms.

    JPEG draft decoding picks a reduced scale (1/2, 1/4, 1/8) that is still at least this
    large, so a 3000 px photo trained at 224 px decodes about 8x fewer pixels.
    """
    if aug is not None and aug.crop == "random-resized":
        # a small-area crop is upscaled to input_size: keep more resolution
        return max(pre.resize_size, int(pre.input_size / max(aug.scale[0], 0.25) ** 0.5))
    return max(pre.resize_size, pre.input_size)
