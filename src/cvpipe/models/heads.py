"""Classification heads: a small MLP on pooled backbone features.

Seed 001's head (2048 → 128 → ReLU → 5) is ``HeadSpec(hidden=[128])`` on a ResNet-50:

    >>> head = build_head(2048, 5, HeadSpec(hidden=[128]))
    >>> head
    Sequential(
      (0): Linear(in_features=2048, out_features=128, bias=True)
      (1): ReLU()
      (2): Linear(in_features=128, out_features=5, bias=True)
    )
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field, field_validator
from torch import nn

from cvpipe.config import Config

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "hardswish": nn.Hardswish,
}


class HeadSpec(Config):
    """Shape of the head put on top of a backbone's pooled features.

    Attributes:
        hidden: sizes of hidden layers; ``[]`` is a single linear layer.
        dropout: dropout probability after each hidden activation (before the final
            linear layer when there are no hidden layers); 0 adds no Dropout module.
        activation: one of relu, gelu, silu, tanh, leaky_relu, hardswish.
    """

    hidden: list[int] = Field(default_factory=list)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    activation: str = "relu"

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError(f"hidden sizes must be positive integers, got {v}")
        return v

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: str) -> str:
        if v not in ACTIVATIONS:
            raise ValueError(f"unknown activation {v!r}; valid: {', '.join(ACTIVATIONS)}")
        return v


def build_head(in_features: int, num_classes: int, spec: HeadSpec) -> nn.Module:
    """Build the head ``[N, in_features] -> [N, num_classes]`` logits.

    Args:
        in_features: the backbone's feature dimension D.
        num_classes: number of output logits C.
        spec: hidden sizes, dropout and activation.

    Returns:
        ``nn.Sequential`` of Linear / activation / Dropout layers (no softmax).

    Raises:
        ValueError: ``in_features`` or ``num_classes`` below 1.
    """
    if in_features < 1 or num_classes < 1:
        raise ValueError(
            f"build_head: in_features and num_classes must be >= 1 (got {in_features}, {num_classes})"
        )
    layers: list[nn.Module] = []
    prev = in_features
    for width in spec.hidden:
        layers += [nn.Linear(prev, width), ACTIVATIONS[spec.activation]()]
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        prev = width
    if not spec.hidden and spec.dropout > 0:
        layers.append(nn.Dropout(spec.dropout))
    layers.append(nn.Linear(prev, num_classes))
    return nn.Sequential(*layers)
