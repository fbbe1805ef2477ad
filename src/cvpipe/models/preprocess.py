"""How images are turned into network inputs for one model: size, crop, normalisation.

A :class:`Preprocess` travels with every model (``ClassifierNet.preprocess``) and every
run (``model_card.json``), so evaluation, prediction, serving and export all feed the
network exactly what it was trained on.

Example:
    >>> p = Preprocess(input_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    >>> Preprocess.from_json(p.to_json()) == p
    True
    >>> x = p.eval_transform()(pil_image)  # doctest: +SKIP   # float32 [3, 224, 224]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from cvpipe.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class Preprocess:
    """Evaluation-time preprocessing of one model.

    Attributes:
        input_size: side of the square crop fed to the network (pixels).
        resize_size: shorter image side after resizing, before the centre crop (eval).
        mean: per-channel mean subtracted from RGB values scaled to [0, 1].
        std: per-channel standard deviation divided out after the mean.
        interpolation: resampling used for the resize: nearest, bilinear or bicubic.
    """

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.input_size < 1 or self.resize_size < 1:
            raise ConfigError(
                f"preprocess: input_size and resize_size must be positive (got {self.input_size}, {self.resize_size})"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"preprocess: unknown interpolation {self.interpolation!r}; valid: {', '.join(INTERPOLATIONS)}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ConfigError(
                f"preprocess: mean and std need 3 values, std > 0 (got {self.mean}, {self.std})"
            )
        # JSON round trips give lists; keep tuples so instances compare and hash equal.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def with_input_size(self, input_size: int) -> Preprocess:
        """A copy for another input size, keeping the resize/crop ratio.

        Example:
            >>> Preprocess().with_input_size(112).resize_size
            128
        """
        ratio = self.resize_size / self.input_size
        return Preprocess(
            input_size=input_size,
            resize_size=max(input_size, round(input_size * ratio)),
            mean=self.mean,
            std=self.std,
            interpolation=self.interpolation,
        )

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """Resize the shorter side, centre-crop, scale to [0, 1] and normalise.

        Returns:
            A callable mapping an RGB PIL image to a float32 tensor ``[3, input_size, input_size]``.
        """
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import v2 as T

        mode = {
            "nearest": InterpolationMode.NEAREST,
            "bilinear": InterpolationMode.BILINEAR,
            "bicubic": InterpolationMode.BICUBIC,
        }[self.interpolation]
        return T.Compose(
            [
                T.ToImage(),
                T.Resize(self.resize_size, interpolation=mode, antialias=True),
                T.CenterCrop(self.input_size),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(mean=list(self.mean), std=list(self.std)),
            ]
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-safe dict (tuples become lists)."""
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Preprocess:
        """Rebuild from :meth:`to_json` output.

        Raises:
            ConfigError: unknown keys or invalid values.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"preprocess: unknown keys {unknown}; valid keys: {', '.join(sorted(known))}"
            )
        values = dict(d)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
