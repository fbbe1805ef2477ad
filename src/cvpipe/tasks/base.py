"""The Task contract: everything that differs between classify, count and detect.

A task is a small object registered by name (:mod:`cvpipe.tasks.registry`); shared code
asks ``get_task(ds.task)`` (or ``get_task(card.task)``) instead of branching on the name.
One module per task implements the contract (:mod:`cvpipe.tasks.classify`,
:mod:`cvpipe.tasks.count` building on it, :mod:`cvpipe.tasks.detect`); a new task plugs in
by subclassing :class:`Task` in one module and calling
:func:`~cvpipe.tasks.registry.register_task`.

The contract is grouped by the room that asks:

- **records** (``cvpipe.data``): which fields a record carries, how they are checked,
  which class(es) a record contributes to counts, stratification and balancing;
- **training** (``cvpipe.engine``): the run (model, data pipeline, step function,
  epoch row) and the defaults it starts from;
- **inference** (``cvpipe.inference``): how a trained model is rebuilt and wrapped into a
  predictor;
- **evaluation** (``cvpipe.evaluation``): metrics, comparison and report sections;
- **serving and tuning** (``cvpipe.serve``, ``cvpipe.tune``): the response a request
  gets, the objectives a study may optimise.

Task objects hold no state; methods import the heavy modules they delegate to lazily, so
``cvpipe.tasks`` stays cheap to import and below every room it serves.

Example:
    >>> from cvpipe.tasks import get_task
    >>> get_task("detect").unit
    'objects'
    >>> get_task("count").record_fields
    ('count',)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from cvpipe.data.manifest import Record
    from cvpipe.engine.runs import ModelCard
    from cvpipe.evaluation.base import Evaluator
    from cvpipe.inference.outputs import Outputs
    from cvpipe.inference.predictor import BasePredictor


class Task(ABC):
    """One task's answers to the questions shared code asks (see the module docstring).

    Attributes:
        name: the name datasets, runs and model cards carry (``dataset.yaml: task``).
        record_fields: the :class:`~cvpipe.data.manifest.Record` fields that carry its
            labels (``("label",)``, ``("count",)``, ``("boxes", "labels")``).
        unit: what class counts count: ``"images"`` (one class per image) or
            ``"objects"`` (one per box).
        monitor: the validation metric early stopping and ``best.pt`` follow by default.
    """

    name: ClassVar[str]
    record_fields: ClassVar[tuple[str, ...]]
    unit: ClassVar[str] = "images"
    monitor: ClassVar[str] = "val.accuracy"

    # ------------------------------------------------------------------ records (data/)

    @abstractmethod
    def label_error(self, rec: Record, classes: Sequence[str]) -> tuple[str, str] | None:
        """Why ``rec``'s label fields do not fit ``classes``: ``(field, message)``, or None."""

    @abstractmethod
    def record_classes(self, rec: Record, classes: Sequence[str]) -> list[int]:
        """The class indices ``rec`` adds to class counts: one per image, or one per object."""

    def class_index(self, rec: Record, classes: Sequence[str]) -> int:
        """The one class of a record (its stratification key) for tasks with one class per
        image; tasks with objects raise :class:`~cvpipe.errors.DatasetError`."""
        from cvpipe.errors import DatasetError

        raise DatasetError(f"task {self.name!r} has no single class per image (record {rec.id!r})")

    # ------------------------------------------------------------------ training (engine/)

    # ------------------------------------------------------------------ inference

    #: Whether ``cvpipe export`` writes this task's runs as an ONNX graph (image →
    #: class probabilities, served by ONNX Runtime).
    exportable: ClassVar[bool] = False

    @abstractmethod
    def load_model(self, card: ModelCard, state: dict[str, Any], path: Path) -> nn.Module:
        """The trained network of a run: built untrained from ``card`` (architecture,
        classes, head, input size, thresholds) with the checkpoint weights ``state`` loaded
        strictly (``path`` names the checkpoint in errors).
        :func:`cvpipe.inference.loading.load_model` reads the card and checkpoint, checks
        that they belong together, asks this and puts the model in eval mode."""

    @abstractmethod
    def predictor(self, model: nn.Module, card: ModelCard, device: str = "cpu") -> BasePredictor:
        """The predictor that streams image files through ``model`` (what
        :meth:`BasePredictor.from_run <cvpipe.inference.predictor.BasePredictor.from_run>`,
        ``cvpipe eval``, ``predict`` and ``serve`` run)."""

    @abstractmethod
    def outputs(self) -> Outputs:
        """What one prediction becomes: the ``cvpipe predict`` row and its CSV lines, the
        ``cvpipe serve`` response, and a server's response as a predict row
        (:class:`~cvpipe.inference.outputs.Outputs`)."""

    # ------------------------------------------------------------------ evaluation

    @abstractmethod
    def evaluator(self) -> Evaluator:
        """How this task's models are scored: evaluation of a run (or predictor) on a split,
        comparison of runs on the same images, and the tables ``cvpipe eval`` and
        ``cvpipe compare`` print (:class:`~cvpipe.evaluation.base.Evaluator`)."""

    # ------------------------------------------------------------------ serving and tuning

    #: The model takes RGB images whole, resizes them itself and answers in their pixels
    #: (detectors): ``cvpipe serve`` decodes them at full size and hands the images over
    #: one list at a time instead of stacking preprocessed tensors.
    whole_images: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def describe(task: Task) -> dict[str, Any]:
    """The task's declared attributes, for tables and messages."""
    return {
        "name": task.name,
        "record_fields": list(task.record_fields),
        "unit": task.unit,
        "monitor": task.monitor,
    }
