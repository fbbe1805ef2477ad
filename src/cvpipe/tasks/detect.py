"""``detect``: boxes and their classes (``Record.boxes`` xyxy pixels + ``Record.labels``).

Trained by the detection run (:mod:`cvpipe.engine.detection_run`), scored by COCO mAP; the
model is a :class:`~cvpipe.models.detection.Detector`. Class counts count objects, and
splits stratify images by the classes of their boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from cvpipe.tasks.base import Task
from cvpipe.tasks.registry import register_task

if TYPE_CHECKING:
    from cvpipe.data.manifest import Record


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

    # ------------------------------------------------------------------ evaluation

    # ------------------------------------------------------------------ serving and tuning

    # recorded_metrics stays empty: a study's objective is checked at the first epoch.

    def objective_names(self) -> tuple[str, ...]:
        """The COCO metric names the detection run writes into its epoch rows."""
        from cvpipe.engine.detection import VAL_METRICS

        return tuple(VAL_METRICS.values())


TASK = register_task(DetectTask())
