"""What every evaluation shares: the data it runs on, what it returns, the Evaluator contract.

Each task scores its models with one :class:`Evaluator`
(:meth:`cvpipe.tasks.base.Task.evaluator`): :class:`cvpipe.evaluation.classify.ClassifyEvaluator`
(classify; count adds count errors) and :class:`cvpipe.evaluation.detect.DetectEvaluator`.
:func:`cvpipe.evaluation.evaluate.evaluate_run` and
:func:`cvpipe.evaluation.compare.compare_runs` ask the run's task for it, so they never
branch on the task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvpipe.data.manifest import Dataset, Record

#: A table for the CLI: ``(headers, rows, title or None)``.
Table = tuple[list[str], list[list[Any]], str | None]


@dataclass(slots=True)
class EvalData:
    """The images an evaluation runs on."""

    dataset: Dataset
    split: str
    records: list[Record]
    notice: str | None = None


@dataclass(slots=True)
class EvalResult:
    """What an evaluation wrote and computed."""

    out_dir: Path
    metrics: dict[str, Any]
    predictions: Path
    report: Path | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class CompareResult:
    """What a comparison wrote: ``data`` is the content of compare.json."""

    out_dir: Path
    data: dict[str, Any]
    report: Path | None


class Evaluator(ABC):
    """How one task's models are scored (module docstring).

    Args:
        task: the task's name, written into metrics.json and compare.json.
    """

    def __init__(self, task: str) -> None:
        self.task = task

    @abstractmethod
    def evaluate(
        self,
        run: Path,
        predictor: Any,
        selection: EvalData,
        *,
        which: str = "best",
        out: str | Path | None = None,
        batch_size: int = 64,
        workers: int = 0,
        report: bool = True,
        max_mistakes: int = 32,
    ) -> EvalResult:
        """Run ``predictor`` (the run's, already loaded) over ``selection`` and write
        ``metrics.json``, ``predictions.jsonl`` and (``report``) ``report.html`` into
        ``out`` (default ``RUN/eval``).

        Raises:
            CheckpointError: the model does not fit the dataset (task or classes).
        """

    @abstractmethod
    def compare(
        self,
        runs: Sequence[str | Path],
        *,
        names: Sequence[str] | None = None,
        data: str | Path | None = None,
        split: str | None = None,
        which: str = "best",
        out: str | Path = "compare",
        batch_size: int = 64,
        workers: int = 0,
        device: str = "cpu",
        n_resamples: int = 2000,
        seed: int = 0,
        report: bool = True,
    ) -> CompareResult:
        """Compare ``runs`` (the first is the baseline) on the same images; write
        ``compare.json`` and ``report.html`` into ``out`` (arguments as
        :func:`cvpipe.evaluation.compare.compare_runs`)."""

    @abstractmethod
    def summary(self, metrics: dict[str, Any]) -> list[Table]:
        """The tables ``cvpipe eval`` prints for one metrics.json (headline first)."""

    @abstractmethod
    def compare_summary(self, data: dict[str, Any]) -> list[Table]:
        """The tables ``cvpipe compare`` prints for one compare.json."""
