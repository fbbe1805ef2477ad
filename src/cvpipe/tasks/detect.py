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
    from cvpipe.data.manifest import Dataset, Record
    from cvpipe.data.record_checks import ValidationPass
    from cvpipe.data.strata import Strata


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

    # ------------------------------------------------------------------ inference

    # ------------------------------------------------------------------ evaluation

    # ------------------------------------------------------------------ serving and tuning


TASK = register_task(DetectTask())
