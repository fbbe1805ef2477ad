"""A trained model rebuilt from its run directory.

:func:`load_model` reads the model card and a checkpoint, checks that they belong
together, and asks the run's task to rebuild the network
(:meth:`cvpipe.tasks.base.Task.load_model`); the tasks build with
:func:`load_classifier` (classify, count) and :func:`load_detector` (detect).

Example:
    >>> model, card = load_model("runs/r50")  # doctest: +SKIP
    >>> card.classes, card.preprocess.input_size  # doctest: +SKIP
    (['1', '2', '3', '4', '5'], 224)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvpipe.engine.runs import ModelCard, RunDir

if TYPE_CHECKING:
    from torch import nn

    from cvpipe.models.classification import ClassifierNet
    from cvpipe.models.detection import Detector


def load_model(run: str | Path, which: str = "best") -> tuple[nn.Module, ModelCard]:
    """Rebuild a trained model (classifier, counter, detector...) from its run directory.

    Args:
        run: run directory.
        which: ``best``, ``last`` or a checkpoint file (``best`` falls back to ``last``
            when the run has no best checkpoint).

    Returns:
        ``(model in eval mode on the CPU, its ModelCard)``: what the card's task builds
        (a :class:`~cvpipe.models.classification.ClassifierNet` for classify and count, a
        :class:`~cvpipe.models.detector.Detector` for detect).

    Raises:
        CheckpointError: missing card/checkpoint, or a checkpoint whose task, classes or
            weights do not fit the card.
    """
    from cvpipe.engine.checkpoint import check_compatible, ckpt_meta, load_checkpoint
    from cvpipe.tasks.registry import get_task

    rd = RunDir(run)
    card = ModelCard.load(rd.card)
    path = rd.checkpoint(which)
    if which == "best" and not path.is_file() and rd.last.is_file():
        path = rd.last
    ckpt = load_checkpoint(path)
    check_compatible(
        ckpt_meta(ckpt), path=path, task=card.task, classes=card.classes, model=card.model
    )
    model = get_task(card.task).load_model(card, ckpt["model"], path)
    model.eval()
    return model, card


def load_classifier(card: ModelCard, state: dict[str, Any], path: Path) -> ClassifierNet:
    """A :class:`~cvpipe.models.classification.ClassifierNet` shaped like ``card`` (model,
    classes, head, input size) with the checkpoint weights ``state`` loaded strictly."""
    from cvpipe.engine.checkpoint import load_state_strict
    from cvpipe.models.classification import create_classifier
    from cvpipe.models.heads import HeadSpec

    net = create_classifier(
        card.model,
        num_classes=len(card.classes),
        weights=None,
        head=HeadSpec.model_validate(card.head),
        input_size=card.input_size,
    )
    load_state_strict(net, state, path)
    return net


def load_detector(card: ModelCard, state: dict[str, Any], path: Path) -> Detector:
    """A :class:`~cvpipe.models.detector.Detector` shaped like ``card`` (see
    :func:`build_detector`) with the checkpoint weights ``state`` loaded strictly."""
    from cvpipe.engine.checkpoint import load_state_strict

    det = build_detector(card)
    load_state_strict(det, state, path)
    return det


def build_detector(card: ModelCard) -> Detector:
    """An untrained detector shaped like the card (thresholds and loss weights included)."""
    from cvpipe.models.detection import create_detector

    th: dict[str, Any] = dict(card.extra.get("thresholds") or {})
    kw: dict[str, Any] = dict(card.extra.get("detector") or {})
    det = create_detector(
        card.model,
        num_classes=len(card.classes),
        weights=None,
        input_size=card.input_size,
        score_thresh=float(th.get("score", kw.get("score_thresh", 0.01))),
        nms_iou=float(th.get("nms_iou", kw.get("nms_iou", 0.45))),
        detections_per_img=int(th.get("detections_per_img", kw.get("detections_per_img", 100))),
        classification_weight=float(kw.get("classification_weight", 1.0)),
        localization_weight=float(kw.get("localization_weight", 1.0)),
        **dict(kw.get("kwargs") or {}),
    )
    if kw.get("image_mean") and kw.get("image_std"):  # e.g. COCO SSD300-VGG16's 0..255 inputs
        transform: Any = det.model.transform
        transform.image_mean = [float(v) for v in kw["image_mean"]]
        transform.image_std = [float(v) for v in kw["image_std"]]
    return det
