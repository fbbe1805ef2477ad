"""Image transforms for training and evaluation (torchvision ``transforms.v2``).

Two pipelines, both taking a PIL image and returning a normalised ``float32`` tensor
``[3, S, S]`` where ``S`` is the network input size:

- :func:`eval_transform` — deterministic: resize the shorter side to ``resize_size``,
  centre crop ``input_size``, normalise. Used for validation, evaluation and the
  frozen-feature cache.
- :func:`train_transform` — the augmentations of :class:`AugmentConfig`:
  ``RandomResizedCrop`` or resize + random crop (or the deterministic eval crop),
  horizontal flip, colour jitter, TrivialAugmentWide.

With ``random-resized`` crops :func:`train_transform` returns a
:class:`RandomResizedCropTransform`: the crop box can be drawn from the image's header
size *before* decoding, so :class:`~cvpipe.data.datasets.ImageDataset` asks the JPEG
decoder for just enough pixels to cover the box at the output size (a small-area crop
of a large photo needs a large decode, a whole-image crop a small one).

Example:
    >>> from cvpipe.models.preprocess import Preprocess  # doctest: +SKIP
    >>> t = train_transform(Preprocess(input_size=224), AugmentConfig(crop="random-resized"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import torch
from PIL import Image
from pydantic import Field
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

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


Box = tuple[int, int, int, int]  # top, left, height, width (torchvision's order)


class RandomResizedCropTransform:
    """``RandomResizedCrop`` + the rest of a training pipeline, crop box drawn first.

    Calling it on a PIL image gives exactly what ``Compose([ToImage(),
    RandomResizedCrop(...), *rest])`` gives. A loader can instead draw the box from the
    header size with :meth:`box`, decode with :meth:`decode_size` (a JPEG draft just
    large enough), and finish with :meth:`apply`: the random stream is the same, so a
    sample seed picks the same crop whatever the decode size.

    Args:
        crop: the ``transforms.v2.RandomResizedCrop`` (size, scale, ratio, interpolation).
        rest: the transforms after the crop (flip, colour, TrivialAugment, normalise),
            applied to the ``uint8`` image tensor.
    """

    def __init__(self, crop: T.RandomResizedCrop, rest: Callable[[Any], torch.Tensor]) -> None:
        self.crop = crop
        self.rest = rest

    @property
    def size(self) -> tuple[int, int]:
        """Output ``(height, width)``."""
        return int(self.crop.size[0]), int(self.crop.size[1])

    def box(self, width: int, height: int) -> Box:
        """Draw a crop box for a ``width x height`` image (torchvision's distribution and
        random stream: ``RandomResizedCrop.make_params``).

        Returns:
            ``(top, left, height, width)`` in pixels of that image.
        """
        p = self.crop.make_params([torch.empty((0, height, width), dtype=torch.uint8)])
        return int(p["top"]), int(p["left"]), int(p["height"]), int(p["width"])

    def decode_size(self, box: Box, width: int, height: int) -> tuple[int, int] | None:
        """The smallest decode ``(w, h)`` of a ``width x height`` image that keeps the box at
        least the output size on both sides; None when only a full decode does."""
        _, _, bh, bw = box
        oh, ow = self.size
        s = max(ow / bw, oh / bh)
        if s >= 1:
            return None
        return math.ceil(width * s), math.ceil(height * s)

    def apply(self, im: Image.Image, box: Box, full: tuple[int, int]) -> torch.Tensor:
        """Crop ``box`` (pixels of the ``full = (width, height)`` image) from ``im`` — the
        same image decoded at any size — resize it to the output size and run the rest."""
        top, left, bh, bw = box
        sx, sy = im.width / full[0], im.height / full[1]
        if abs(sx / sy - 1) > 0.05:  # not the image the size was read from (rotated?)
            top, left, bh, bw = self.box(im.width, im.height)
            sx = sy = 1.0
        x0 = min(max(round(left * sx), 0), im.width - 1)
        y0 = min(max(round(top * sy), 0), im.height - 1)
        x1 = min(max(round((left + bw) * sx), x0 + 1), im.width)
        y1 = min(max(round((top + bh) * sy), y0 + 1), im.height)
        x = TF.to_image(im.crop((x0, y0, x1, y1)))
        x = TF.resize(x, list(self.size), interpolation=self.crop.interpolation, antialias=True)
        return self.rest(x)

    def __call__(self, im: Image.Image) -> torch.Tensor:
        return self.apply(im, self.box(im.width, im.height), im.size)


def train_transform(pre: Preprocess, aug: AugmentConfig) -> Callable[[Any], torch.Tensor]:
    """The training pipeline described by ``aug`` for a model with preprocessing ``pre``.

    Args:
        pre: the model's preprocessing.
        aug: augmentation settings.

    Returns:
        A callable mapping a PIL image to a normalised ``float32`` tensor ``[3, S, S]``
        (a :class:`RandomResizedCropTransform` for ``random-resized`` crops).
        Randomness comes from torch's global generator (seeded per sample by the loader).
    """
    interp = _interp(pre)
    ops: list[Any] = [T.ToImage()]  # uint8 tensor ops from here on, like Preprocess.eval_transform
    if aug.crop == "random":
        ops += [
            T.Resize(pre.resize_size, interpolation=interp, antialias=True),
            T.RandomCrop(pre.input_size),
        ]
    elif aug.crop == "center":
        ops += [
            T.Resize(pre.resize_size, interpolation=interp, antialias=True),
            T.CenterCrop(pre.input_size),
        ]
    after: list[Any] = []
    if aug.hflip:
        after.append(T.RandomHorizontalFlip())
    if aug.color_jitter > 0:
        s = aug.color_jitter
        after.append(T.ColorJitter(brightness=s, contrast=s, saturation=s))
    if aug.trivial_augment:
        after.append(T.TrivialAugmentWide(interpolation=interp))
    if aug.crop == "random-resized":
        crop = T.RandomResizedCrop(
            pre.input_size, scale=aug.scale, interpolation=interp, antialias=True
        )
        return RandomResizedCropTransform(crop, T.Compose(after + _normalize(pre)))
    return T.Compose(ops + after + _normalize(pre))


def draft_size(pre: Preprocess, aug: AugmentConfig | None = None) -> int:
    """The smallest decode size that loses nothing for these transforms.

    JPEG draft decoding picks a reduced scale (1/2, 1/4, 1/8) that is still at least this
    large, so a 3000 px photo trained at 224 px decodes about 8x fewer pixels.
    :class:`~cvpipe.data.datasets.ImageDataset` sizes the decode of each
    ``random-resized`` crop from its box instead (:meth:`RandomResizedCropTransform.decode_size`);
    this value is the fallback for those pipelines.
    """
    if aug is not None and aug.crop == "random-resized":
        # a small-area crop is upscaled to input_size: keep more resolution
        return max(pre.resize_size, int(pre.input_size / max(aug.scale[0], 0.25) ** 0.5))
    return max(pre.resize_size, pre.input_size)
