"""Small CNNs trained from scratch: seed 001's exact baseline and seed 003's base CNN.

Both are split like every other classifier: a backbone giving features ``[N, D]`` and a
head built from a :class:`~cvpipe.models.heads.HeadSpec`.

Seed 001's benchmark network (5 conv + 4 linear, 224 px input, no normalisation)::

    conv1 3→16 3x3 p1, ReLU                      224
    conv2 16→32, ReLU, maxpool 2                 112
    conv3 32→64, ReLU, maxpool 2                  56
    conv4 64→128, ReLU, maxpool 2                 28
    conv5 128→256, ReLU, maxpool 2                14   → flatten 14*14*256 = 50176
    fc1 50176→2048, ReLU; fc2 2048→1024, ReLU; fc3 1024→128, ReLU; fc4 128→C

is ``CustomCNNBackbone`` + ``HeadSpec(hidden=[2048, 1024, 128])`` (:data:`CUSTOM_CNN_HEAD`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvpipe.models.heads import HeadSpec

CUSTOM_CNN_INPUT = 224
CUSTOM_CNN_FEATURES = 14 * 14 * 256
CUSTOM_CNN_HEAD = HeadSpec(hidden=[2048, 1024, 128])
BASE_CNN_HEAD = HeadSpec(hidden=[128], dropout=0.5)


class CustomCNNBackbone(nn.Module):
    """Seed 001's five convolutions, exactly; images ``[N, 3, 224, 224]`` → ``[N, 50176]``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 128, 3, padding=1)
        self.conv5 = nn.Conv2d(128, 256, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (CUSTOM_CNN_INPUT, CUSTOM_CNN_INPUT):
            raise ValueError(
                f"custom_cnn takes {CUSTOM_CNN_INPUT}x{CUSTOM_CNN_INPUT} images (its first linear layer "
                f"is sized for 14*14*256 features); got {tuple(x.shape[-2:])}"
            )
        x = F.relu(self.conv1(x))
        x = self.pool(F.relu(self.conv2(x)))
        x = self.pool(F.relu(self.conv3(x)))
        x = self.pool(F.relu(self.conv4(x)))
        x = self.pool(F.relu(self.conv5(x)))
        return torch.flatten(x, 1)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
    )


class BaseCNNBackbone(nn.Module):
    """Seed 003's "base CNN": four conv-BN-ReLU-maxpool blocks (32, 64, 128, 256) and global
    average pooling; any input size ≥ 16 px; ``[N, 3, H, W]`` → ``[N, 256]``."""

    feature_dim = 256

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            _block(3, 32), _block(32, 64), _block(64, 128), _block(128, 256)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.blocks(x)), 1)
