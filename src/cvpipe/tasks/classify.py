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
    from cvpipe.data.manifest import Record
    from cvpipe.data.record_checks import ValidationPass
    from cvpipe.data.strata import Strata


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

    # ------------------------------------------------------------------ inference

    # ------------------------------------------------------------------ evaluation

    # ------------------------------------------------------------------ serving and tuning


TASK = register_task(ClassifyTask())
