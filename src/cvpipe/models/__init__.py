"""Models: classifiers (torchvision, timm, custom CNNs), heads, preprocessing, offline weights.

Names are imported lazily so ``from cvpipe.models.preprocess import Preprocess`` (model
cards, serving) does not pay for torch/timm unless a model is built.

Example:
    >>> from cvpipe.models import create_classifier
    >>> net = create_classifier("resnet18", num_classes=3)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClassifierNet": "cvpipe.models.classification",
    "MODELS": "cvpipe.models.classification",
    "ModelInfo": "cvpipe.models.classification",
    "create_classifier": "cvpipe.models.classification",
    "list_models": "cvpipe.models.classification",
    "HeadSpec": "cvpipe.models.heads",
    "build_head": "cvpipe.models.heads",
    "Preprocess": "cvpipe.models.preprocess",
    "resolve": "cvpipe.models.weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cvpipe.models' has no attribute {name!r}")
