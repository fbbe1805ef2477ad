"""``classify``: one class per image (``Record.label``, an index into the classes).

Trained by the classifier run (:mod:`cvpipe.engine.trainer`), scored by accuracy, macro
F1 and the confusion matrix; the model is a :class:`~cvpipe.models.classification.ClassifierNet`.
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


class ClassifyTask(Task):
    """One label per image."""

    name: ClassVar[str] = "classify"
    record_fields: ClassVar[tuple[str, ...]] = ("label",)
    unit: ClassVar[str] = "images"
    monitor: ClassVar[str] = "val.accuracy"

    # ------------------------------------------------------------------ records (data/)

    def label_error(self, rec: Record, classes: Sequence[str]) -> tuple[str, str] | None:
        if rec.label is None or not 0 <= rec.label < len(classes):
            return "label", f"label {rec.label!r} is not a class index in 0..{len(classes) - 1}"
        return None

    def class_index(self, rec: Record, classes: Sequence[str]) -> int:
        if rec.label is None:
            from cvpipe.errors import DatasetError

            raise DatasetError(f"record {rec.id!r} has no label")
        return rec.label

    def record_classes(self, rec: Record, classes: Sequence[str]) -> list[int]:
        return [self.class_index(rec, classes)]

    # ------------------------------------------------------------------ training (engine/)

    # ------------------------------------------------------------------ inference

    exportable: ClassVar[bool] = True

    def load_model(self, card: ModelCard, state: dict[str, Any], path: Path) -> nn.Module:
        from cvpipe.inference.loading import load_classifier

        return load_classifier(card, state, path)

    def predictor(self, model: nn.Module, card: ModelCard, device: str = "cpu") -> BasePredictor:
        from cvpipe.inference.classify import Predictor

        return Predictor(model, card, device=device)

    def outputs(self) -> Outputs:
        from cvpipe.inference.outputs import ClassOutputs

        return ClassOutputs()

    # ------------------------------------------------------------------ evaluation

    def evaluator(self) -> Evaluator:
        from cvpipe.evaluation.classify import ClassifyEvaluator

        return ClassifyEvaluator(self.name)

    # ------------------------------------------------------------------ serving and tuning


TASK = register_task(ClassifyTask())
