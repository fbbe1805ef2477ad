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

    from cvpipe.data.manifest import Dataset, Record
    from cvpipe.data.record_checks import ValidationPass
    from cvpipe.data.strata import Strata
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.defaults import TaskDefault
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
        models: what its trained models are called in messages (``"detectors"``).
        unit: what class counts count: ``"images"`` (one class per image) or
            ``"objects"`` (one per box).
        monitor: the validation metric early stopping and ``best.pt`` follow by default.
    """

    name: ClassVar[str]
    record_fields: ClassVar[tuple[str, ...]]
    models: ClassVar[str]
    unit: ClassVar[str] = "images"
    monitor: ClassVar[str] = "val.accuracy"

    # ------------------------------------------------------------------ records (data/)

    @abstractmethod
    def label_error(self, rec: Record, classes: Sequence[str]) -> tuple[str, str] | None:
        """Why ``rec``'s label fields do not fit ``classes``: ``(field, message)``, or None."""

    @abstractmethod
    def record_classes(self, rec: Record, classes: Sequence[str]) -> list[int]:
        """The class indices ``rec`` adds to class counts: one per image, or one per object."""

    def output_classes(self, classes: Sequence[str]) -> list[str]:
        """The classes a model of this task outputs, given the dataset's ``classes``: the
        same list, except for a task whose targets derive from the records (e.g. "does the
        image show any object" over detection records)."""
        return list(classes)

    def class_index(self, rec: Record, classes: Sequence[str]) -> int:
        """The one output class of a record (an index into :meth:`output_classes`: its
        training target and stratification key) for tasks with one class per image; tasks
        with objects raise :class:`~cvpipe.errors.DatasetError`."""
        from cvpipe.errors import DatasetError

        raise DatasetError(f"task {self.name!r} has no single class per image (record {rec.id!r})")

    @property
    def one_class_per_image(self) -> bool:
        """Whether every record has exactly one class (``unit == "images"``).

        Then the per-image class questions apply: :meth:`class_index` answers, a split can
        hold a fixed number of test images per class, duplicates can disagree on a label,
        and the audit can look for label errors and class-conditional outliers. Tasks with
        objects label regions of the image instead and answer False.
        """
        return self.unit == "images"

    def label_fields(self, name: str, classes: Sequence[str] | None = None) -> dict[str, Any]:
        """The record fields that give an image the one class ``name``.

        Importers write a record's class before the class table exists (``classes`` None:
        a class *name* where the field holds an index); ``cvpipe audit --fix --relabel``
        gives a record another class of ``classes``. Tasks with objects raise
        :class:`~cvpipe.errors.DatasetError` (an image has no single class).
        """
        from cvpipe.errors import DatasetError

        raise DatasetError(f"task {self.name!r} has no single class per image (class {name!r})")

    @abstractmethod
    def strata(self) -> Strata:
        """How ``cvpipe split`` stratifies and ``cvpipe balance`` resamples images: by the
        image's class, or by the rarest class among its objects
        (:mod:`cvpipe.data.strata`)."""

    @abstractmethod
    def check_record(
        self, vp: ValidationPass, index: int, rec: Record, width: int, height: int
    ) -> Record:
        """``cvpipe validate``: check ``rec``'s labels against its decoded ``width`` x
        ``height`` (adding findings to ``vp``) and return the record as a cleaned dataset
        keeps it (its size corrected; objects clipped or dropped)."""

    def eda_stats(self, ds: Dataset) -> dict[str, Any]:
        """``cvpipe eda``: the sections of ``eda.json`` only this task has (e.g. box
        statistics, the count distribution); none by default."""
        return {}

    # ------------------------------------------------------------------ training (engine/)

    #: Whether ``train_distributed`` (DDP over local processes) can train this task.
    data_parallel: ClassVar[bool] = True

    @abstractmethod
    def run_class(self) -> type[Any]:
        """The engine's run that trains this task: :class:`cvpipe.engine.trainer.Run` or a
        subclass swapping in the task's model, data pipeline and epoch row."""

    @abstractmethod
    def step_function(self) -> Any:
        """The per-batch step the training loop calls (:data:`cvpipe.engine.loop.StepFn`):
        the loss (and its parts) of one batch, in training and in validation."""

    @abstractmethod
    def defaults(self) -> tuple[TaskDefault, ...]:
        """What ``cvpipe train`` uses without ``--model``: models to try in order, with
        the settings that go with them (:mod:`cvpipe.engine.defaults`)."""

    def check_config(self, config: TrainConfig) -> None:
        """Raise :class:`~cvpipe.errors.ConfigError` for settings that mean nothing for this
        task, before anything is built (the run checks the rest); the default accepts all."""
        return None

    def loss_baseline(self, num_classes: int) -> float | None:
        """The training loss of an untrained model that knows nothing (``ln C`` for a
        softmax over ``C`` classes), which the health rules compare the first steps with;
        None when the loss has no such baseline (detection's summed box losses)."""
        return None

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

    #: Tuning (``cvpipe tune``): the epoch-row metrics every run of this task records, so
    #: the objectives a study may optimise; ``cvpipe tune`` rejects any other objective
    #: before the first trial. Empty when the task does not list them: then any
    #: ``train.*`` / ``val.*`` name passes the config check and the first epoch of the
    #: first trial checks it (stopping the study when the run does not record it).
    recorded_metrics: ClassVar[tuple[str, ...]] = ()

    #: Whether ``cvpipe tune`` runs studies over this task's datasets (trials are
    #: ordinary training runs scored after every epoch).
    tunable: ClassVar[bool] = True

    def objective_names(self) -> tuple[str, ...]:
        """Metric names a study over this task's runs can optimise, for the hint when an
        objective differs from one only by case; by default :attr:`recorded_metrics`."""
        return tuple(self.recorded_metrics)

    def check_model_name(self, name: str) -> None:
        """Check before the first trial that ``name`` (``train.model``, or a ``model``
        choice of a search space) is a model this task trains.

        Raises:
            UnknownNameError: no such model (the message lists close names). The default
                checks nothing: the run checks its model when it starts.
        """
        return None

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
