"""``detect``: boxes and their classes (``Record.boxes`` xyxy pixels + ``Record.labels``).

Trained by the detection run (:mod:`cvpipe.engine.detection_run`), scored by COCO mAP; the
model is a :class:`~cvpipe.models.detection.Detector`. Class counts count objects, and
splits stratify images by the classes of their boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from cvpipe.tasks.base import Task
from cvpipe.tasks.registry import register_task

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from cvpipe.data.manifest import Record
    from cvpipe.engine.runs import ModelCard
    from cvpipe.evaluation.base import Evaluator
    from cvpipe.inference.outputs import Outputs
    from cvpipe.inference.predictor import BasePredictor


class DetectTask(Task):
    """Boxes with a class each; an image may have none (a negative)."""

    name: ClassVar[str] = "detect"
    record_fields: ClassVar[tuple[str, ...]] = ("boxes", "labels")
    unit: ClassVar[str] = "objects"
    monitor: ClassVar[str] = "val.mAP"

    # ------------------------------------------------------------------ records (data/)

    def label_error(self, rec: Record, classes: Sequence[str]) -> tuple[str, str] | None:
        boxes, labels = rec.boxes or [], rec.labels or []
        if len(boxes) != len(labels):
            return "labels", f"{len(boxes)} boxes but {len(labels)} labels"
        bad = [lab for lab in labels if not 0 <= lab < len(classes)]
        if bad:
            return "labels", f"labels {bad} are not class indices in 0..{len(classes) - 1}"
        return None

    def record_classes(self, rec: Record, classes: Sequence[str]) -> list[int]:
        return list(rec.labels or [])

    # ------------------------------------------------------------------ training (engine/)

    # ------------------------------------------------------------------ inference

    def load_model(self, card: ModelCard, state: dict[str, Any], path: Path) -> nn.Module:
        from cvpipe.inference.loading import load_detector

        return load_detector(card, state, path)

    def predictor(self, model: nn.Module, card: ModelCard, device: str = "cpu") -> BasePredictor:
        from cvpipe.inference.detect import DetectionPredictor

        return DetectionPredictor(model, card, device=device)

    def outputs(self) -> Outputs:
        from cvpipe.inference.outputs import BoxOutputs

        return BoxOutputs()

    # ------------------------------------------------------------------ evaluation

    def evaluator(self) -> Evaluator:
        from cvpipe.evaluation.detect import DetectEvaluator

        return DetectEvaluator(self.name)

    # ------------------------------------------------------------------ serving and tuning

    whole_images: ClassVar[bool] = True


TASK = register_task(DetectTask())
