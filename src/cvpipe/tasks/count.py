"""``count``: how many objects an image shows, as a classification over count classes.

A count record carries ``Record.count``; its class is ``classes.index(str(count))`` (the
classes are the counts seen at import, e.g. ``["1", "2", "3", "4", "5"]``). Everything
else is classification (:class:`~cvpipe.tasks.classify.ClassifyTask`); evaluation adds
count errors (MAE, RMSE, off-by-one) to the classification metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from cvpipe.tasks.classify import ClassifyTask
from cvpipe.tasks.registry import register_task

if TYPE_CHECKING:
    from cvpipe.data.manifest import Dataset, Record
    from cvpipe.data.strata import Strata
    from cvpipe.evaluation.base import Evaluator
    from cvpipe.inference.outputs import Outputs


class CountTask(ClassifyTask):
    """Counts as classes."""

    name: ClassVar[str] = "count"
    record_fields: ClassVar[tuple[str, ...]] = ("count",)
    models: ClassVar[str] = "counters"

    # ------------------------------------------------------------------ records (data/)

    def label_error(self, rec: Record, classes: Sequence[str]) -> tuple[str, str] | None:
        if rec.count is None or str(rec.count) not in classes:
            return "count", f"count {rec.count!r} is not one of the classes {list(classes)}"
        return None

    def class_index(self, rec: Record, classes: Sequence[str]) -> int:
        try:
            return list(classes).index(str(rec.count))
        except ValueError:
            from cvpipe.errors import DatasetError

            raise DatasetError(
                f"record {rec.id!r}: count {rec.count!r} is not one of the classes {list(classes)}"
            ) from None

    def label_fields(self, name: str, classes: Sequence[str] | None = None) -> dict[str, Any]:
        return {"count": int(name)}

    def strata(self) -> Strata:
        from cvpipe.data.strata import ByImageClass

        return ByImageClass(self, "count")

    def eda_stats(self, ds: Dataset) -> dict[str, Any]:
        from cvpipe.data.eda_stats import count_stats

        return {**super().eda_stats(ds), "counts": count_stats(ds)}

    # ------------------------------------------------------------------ training (engine/)

    # ------------------------------------------------------------------ inference

    def outputs(self) -> Outputs:
        """Class outputs whose classes are counts: rows and responses add ``count``."""
        from cvpipe.inference.outputs import ClassOutputs

        return ClassOutputs(counts=True)

    # ------------------------------------------------------------------ evaluation

    def evaluator(self) -> Evaluator:
        """Classification scoring plus count errors (MAE, RMSE, off-by-one)."""
        from cvpipe.evaluation.classify import ClassifyEvaluator

        return ClassifyEvaluator(self.name, counts=True)

    # ------------------------------------------------------------------ serving and tuning


TASK = register_task(CountTask())
