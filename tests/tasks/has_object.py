"""A toy fourth task, plugged in from outside cvpipe: does an image show any object?

``has_object`` datasets carry detection records (boxes and their labels, negatives
without boxes) and train an image classifier with two outputs, ``empty`` and ``object``.
Everything it needs is said here, by registering one module: the label fields and their
checks, the derived classes, and that it trains, evaluates and predicts as a classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from cvpipe.data.manifest import Record
from cvpipe.tasks import get_task, register_task
from cvpipe.tasks.classify import ClassifyTask

OUTPUTS = ["empty", "object"]


class HasObjectTask(ClassifyTask):
    """Binary "is there an object" over detection records."""

    name: ClassVar[str] = "has_object"
    record_fields: ClassVar[tuple[str, ...]] = ("boxes", "labels")
    models: ClassVar[str] = "object-presence classifiers"
    unit: ClassVar[str] = "images"

    def label_error(self, rec: Record, classes: Sequence[str]) -> tuple[str, str] | None:
        return get_task("detect").label_error(rec, classes)

    def output_classes(self, classes: Sequence[str]) -> list[str]:
        return list(OUTPUTS)

    def class_index(self, rec: Record, classes: Sequence[str]) -> int:
        return 1 if rec.boxes else 0

    def record_classes(self, rec: Record, classes: Sequence[str]) -> list[int]:
        return [self.class_index(rec, classes)]


TASK = register_task(HasObjectTask())
