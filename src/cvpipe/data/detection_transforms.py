"""Box-aware image transforms for detector training and evaluation (``transforms.v2``).

Both pipelines take ``(PIL image, {"boxes": FloatTensor[N, 4] xyxy pixels, "labels":
Int64Tensor[N]})`` and return ``(FloatTensor[3, H, W] in 0..1, target)`` with the boxes
moved exactly as the pixels were (torchvision ``tv_tensors.BoundingBoxes``). Detectors
resize and normalise internally (:mod:`cvpipe.models.detection`), so neither pipeline
resizes to the input size nor normalises.

:func:`detection_train_transform` applies, in this order, whatever
:class:`DetectionAugmentConfig` turns on:

- ``photometric``: ``RandomPhotometricDistort`` (brightness, contrast, saturation, hue,
  channel swap) — pixels only;
- ``zoom_out``: ``RandomZoomOut`` onto a canvas up to ``zoom_out`` times the image side,
  filled with the ImageNet mean colour (objects get smaller; SSD's "expand");
- ``iou_crop``: ``RandomIoUCrop`` (SSD's minimum-IoU crops; boxes are cut to the crop and
  those whose centre falls outside are removed);
- ``scale_jitter``: large-scale jitter — ``ScaleJitter`` to ``scale_jitter`` × the input
  size, then a random ``input_size`` crop (padded when smaller);
- ``hflip``: ``RandomHorizontalFlip`` (seed 000's doubling: x1 → W − x2, x2 → W − x1).

Boxes are then clamped to the image and boxes left under 1 px wide or high by a crop are
removed with their labels (``SanitizeBoundingBoxes``). Randomness comes from torch's
global generator, seeded per sample by the loader.

Example:
    >>> t = detection_train_transform(DetectionAugmentConfig(hflip=True), input_size=320)
    >>> img, target = t(pil_image, {"boxes": boxes, "labels": labels})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pydantic import Field, model_validator
from torchvision import tv_tensors
from torchvision.transforms import v2 as T

from cvpipe.config import Config

Target = dict[str, torch.Tensor]
DetectionTransform = Callable[[Any, Target], tuple[torch.Tensor, Target]]

# ImageNet mean as uint8: the zoom-out canvas colour (what SSD's "expand" fills with).
FILL_RGB = (124, 116, 104)


class DetectionAugmentConfig(Config):
    """Training-time augmentation of detectors (every step moves the boxes with the pixels).

    Attributes:
        hflip: random horizontal flip (p = 0.5).
        photometric: random photometric distortion (colour, contrast, channel swap).
        zoom_out: largest canvas side / image side of a random zoom-out (1 = off; SSD
            uses 4). Applied with p = 0.5.
        iou_crop: SSD's random minimum-IoU crop.
        scale_jitter: ``[lo, hi]`` scale range of large-scale jitter around the input
            size, followed by a random input-size crop (None = off), e.g. ``[0.5, 2.0]``.
    """

    hflip: bool = True
    photometric: bool = False
    zoom_out: float = Field(default=1.0, ge=1.0, le=8.0)
    iou_crop: bool = False
    scale_jitter: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _jitter_range(self) -> DetectionAugmentConfig:
        if self.scale_jitter is not None:
            lo, hi = self.scale_jitter
            if not 0 < lo <= hi:
                raise ValueError(
                    f"scale_jitter must be [lo, hi] with 0 < lo <= hi (got {list(self.scale_jitter)})"
                )
        return self


class _Pipeline:
    """``(PIL image, target) → (float tensor, target)`` through a ``v2.Compose``.

    A class rather than a closure so DataLoader workers can pickle it.
    """

    def __init__(self, ops: list[Any]) -> None:
        self.compose = T.Compose(ops)

    def __call__(self, image: Any, target: Target) -> tuple[torch.Tensor, Target]:
        img = T.functional.to_image(image)
        boxes = tv_tensors.BoundingBoxes(
            torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=(int(img.shape[-2]), int(img.shape[-1])),
        )
        labels = torch.as_tensor(target["labels"], dtype=torch.int64).reshape(-1)
        out_img, out = self.compose(img, {"boxes": boxes, "labels": labels})
        return out_img, {"boxes": out["boxes"], "labels": out["labels"]}

    def __repr__(self) -> str:
        return f"DetectionPipeline({self.compose})"


def _finish() -> list[Any]:
    return [
        T.ClampBoundingBoxes(),
        T.SanitizeBoundingBoxes(min_size=1.0),
        T.ToDtype(torch.float32, scale=True),
        T.ToPureTensor(),
    ]


def detection_train_transform(aug: DetectionAugmentConfig, input_size: int) -> DetectionTransform:
    """The training pipeline described by ``aug`` (module docstring for the order).

    Args:
        aug: which augmentations are on.
        input_size: the detector's input size (the scale-jitter crop size).

    Returns:
        A picklable callable ``(PIL image, {"boxes", "labels"}) → (FloatTensor[3, H, W]
        in 0..1, {"boxes": FloatTensor[M, 4] xyxy, "labels": Int64Tensor[M]})``, M ≤ N.
    """
    ops: list[Any] = []
    if aug.photometric:
        ops.append(T.RandomPhotometricDistort(p=0.5))
    if aug.zoom_out > 1.0:
        fill = {tv_tensors.Image: FILL_RGB, "others": 0}
        ops.append(T.RandomZoomOut(fill=fill, side_range=(1.0, aug.zoom_out), p=0.5))
    if aug.iou_crop:
        ops += [T.RandomIoUCrop(), T.SanitizeBoundingBoxes(min_size=1.0)]
    if aug.scale_jitter is not None:
        ops += [
            T.ScaleJitter((input_size, input_size), scale_range=aug.scale_jitter, antialias=True),
            T.RandomCrop(
                input_size, pad_if_needed=True, fill={tv_tensors.Image: FILL_RGB, "others": 0}
            ),
        ]
    if aug.hflip:
        ops.append(T.RandomHorizontalFlip(p=0.5))
    return _Pipeline(ops + _finish())


def detection_eval_transform() -> DetectionTransform:
    """Deterministic pipeline: PIL image → float tensor in 0..1, boxes clamped, unchanged otherwise."""
    return _Pipeline(_finish())
