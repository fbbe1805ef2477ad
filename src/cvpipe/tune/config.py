"""``TuneConfig``: what ``cvpipe tune`` searches, how, and where the study lives.

.. code-block:: yaml

    dataset: demo/data/counting
    train:                        # the base train config (or a path to a train YAML)
      model: resnet50
      freeze: frozen
      head: {hidden: [128]}
      epochs: 5
    space:
      optimizer.lr: {type: float, low: 0.001, high: 0.1}
      batch_size: [16, 32, 64, 128, 256]
    objective: {metric: val.loss, direction: minimize}
    max_trials: 4
    max_parallel: 2
    strategy: bayesian            # bayesian (TPE) | random | grid | hyperband
    pruning: {enabled: true, pruner: median, warmup_epochs: 1}
    out: tune/seed001

Everything is checked by :func:`validate_tune_config` before the first trial: the base
train config, every key and bound of the space, the objective metric (it must be one the
run records), the dataset and its task. What differs by task (the metrics a run records,
the model names it trains, whether it can be tuned) is asked of the task
(:class:`~cvpipe.tasks.base.Task`, tuning part of its contract).

Example:
    >>> cfg = load_config(TuneConfig, values={"dataset": "d", "space": {"optimizer.lr": [0.01, 0.1]}})
    >>> cfg.objective.resolved_direction
    'minimize'
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from cvpipe.config import Config, read_yaml
from cvpipe.errors import ConfigError
from cvpipe.registry import suggest
from cvpipe.tasks.registry import get_task, task_names
from cvpipe.tracking.config import TrackingConfig
from cvpipe.tune.space import SearchSpace

_METRIC_NAME = re.compile(r"^(train|val|test)\.[A-Za-z0-9_@.\-\[\]:]+$")

Strategy = Literal["bayesian", "random", "grid", "hyperband"]


class ObjectiveConfig(Config):
    """The metric a trial is scored by.

    Attributes:
        metric: any epoch-row metric of the run (``val.loss``, ``val.accuracy``, ``val.mAP``).
        direction: ``minimize``, ``maximize`` or ``auto`` (maximize accuracy-like names).
        reduce: ``best`` (the best epoch's value: the run's ``best.pt``) or ``last``
            (the final epoch's value, like a "final validation loss").
    """

    metric: str = "val.loss"
    direction: Literal["minimize", "maximize", "auto"] = "auto"
    reduce: Literal["best", "last"] = "best"

    @property
    def resolved_direction(self) -> Literal["minimize", "maximize"]:
        if self.direction != "auto":
            return self.direction
        from cvpipe.engine.config import EarlyStoppingConfig

        mode = EarlyStoppingConfig(metric=self.metric).resolved_mode
        return "maximize" if mode == "max" else "minimize"


class PruningConfig(Config):
    """Early stopping of bad trials on their per-epoch objective values.

    Attributes:
        enabled: report each epoch's value to Optuna and stop trials it prunes.
        pruner: ``median`` (stop a trial worse than the median of earlier trials at the
            same epoch), ``hyperband`` or ``none``. Strategy ``hyperband`` implies hyperband.
        warmup_epochs: never prune before this many epochs of a trial.
        startup_trials: the median pruner waits for this many finished trials.
    """

    enabled: bool = True
    pruner: Literal["median", "hyperband", "none"] = "median"
    warmup_epochs: int = Field(default=1, ge=0)
    startup_trials: int = Field(default=2, ge=0)


class TuneConfig(Config):
    """All settings of ``cvpipe tune``.

    Attributes:
        dataset: dataset directory every trial trains on.
        train: the base train config: an inline mapping or a path to a train YAML.
        space: dotted train-config keys → parameters (see :mod:`cvpipe.tune.space`).
        objective: metric and direction.
        max_trials: trials in the study (completed, pruned and failed ones count;
            a trial interrupted by a killed process does not and is retried).
        max_parallel: trial processes on this machine (GPUs are shared round-robin).
        strategy: ``bayesian`` (TPE), ``random``, ``grid`` or ``hyperband``
            (TPE sampling with the Hyperband pruner).
        pruning: early stopping of bad trials.
        seed: sampler seed (worker ``i`` uses ``seed + i``).
        storage: Optuna storage URL (default ``sqlite:///OUT/study.db``); a
            ``postgresql://`` URL lets workers on many machines share the study.
        study: study name (default: the name of ``out``).
        warm_start_from: an earlier study (its output directory, or a study name in the
            same storage) whose best parameters are tried first.
        out: output directory: ``trials/trial_NNNN`` run directories, results, report.
        heartbeat_s: seconds between a running trial's heartbeats; a trial silent for
            ``grace_s`` (default 3 heartbeats) belongs to a dead worker and is failed.
        max_retries: times an interrupted trial's parameters are tried again.
        report: write ``OUT/report.html`` when the study ends (``OUT/results.csv`` always).
        tracking: log every trial to MLflow (as child runs of one run for the study) and/or
            TensorBoard; replaces the base train config's ``tracking`` when set
            (``--set tracking=mlflow``; :class:`~cvpipe.tracking.config.TrackingConfig`).
    """

    dataset: str | None = None
    train: dict[str, Any] | str = Field(default_factory=dict)
    space: dict[str, Any] = Field(default_factory=dict)
    objective: ObjectiveConfig = ObjectiveConfig()
    max_trials: int = Field(default=10, ge=1)
    max_parallel: int = Field(default=1, ge=1)
    strategy: Strategy = "bayesian"
    pruning: PruningConfig = PruningConfig()
    seed: int = 0
    storage: str | None = None
    study: str | None = None
    warm_start_from: str | None = None
    out: str = "tune"
    heartbeat_s: int = Field(default=10, ge=1)
    grace_s: int | None = Field(default=None, ge=1)
    max_retries: int = Field(default=2, ge=0)
    report: bool = True
    tracking: TrackingConfig | None = None

    @field_validator("study")
    @classmethod
    def _study_name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("study name must not be empty")
        return v

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace.from_mapping(self.space)

    @property
    def study_name(self) -> str:
        return self.study or Path(self.out).resolve().name

    @property
    def grace(self) -> int:
        return self.grace_s or 3 * self.heartbeat_s

    def base_train(self) -> dict[str, Any]:
        """The base train config as a mapping (reading ``train`` when it is a path).

        Raises:
            ConfigError: the file is missing or not a YAML mapping.
        """
        base = read_yaml(self.train) if isinstance(self.train, str) else dict(self.train)
        if self.tracking is not None:
            base["tracking"] = self.tracking.model_dump(mode="json")
        return base


def check_objective(metric: str, task: str) -> None:
    """Check that runs of ``task`` record ``metric`` (the task's
    :attr:`~cvpipe.tasks.base.Task.recorded_metrics`; a task that lists none accepts any
    ``train.*`` / ``val.*`` name, checked at the first epoch of the first trial).

    Raises:
        ConfigError: a metric the run never records (with close names and the full list).
    """
    t = get_task(task)
    known = t.recorded_metrics
    if not known:
        same = [m for m in t.objective_names() if m.lower() == metric.lower() and m != metric]
        if same:
            raise ConfigError(
                f"objective.metric: a {task} run records {same[0]!r}, not {metric!r} (names are case-sensitive)"
            )
        if not _METRIC_NAME.match(metric):
            raise ConfigError(
                f"objective.metric: {metric!r} is not a recorded metric name; runs record "
                f"'train.*' and 'val.*' metrics, e.g. val.loss or val.mAP"
            )
        return
    if metric not in known:
        raise ConfigError(
            f"objective.metric: a {task} run never records {metric!r}; {suggest(metric, known)}"
            f"recorded metrics: {', '.join(known)}"
        )


def check_model_names(base: dict[str, Any], space: SearchSpace, task: str) -> None:
    """Check the base model and every ``model`` choice are models ``task`` trains
    (:meth:`~cvpipe.tasks.base.Task.check_model_name`).

    Raises:
        ConfigError: an unknown model name, with close ones.
    """
    from cvpipe.errors import UnknownNameError
    from cvpipe.tune.space import CategoricalParam

    t = get_task(task)
    names = [("train.model", base["model"])] if base.get("model") else []
    p = space.params.get("model")
    if isinstance(p, CategoricalParam):
        names += [("space.model", c) for c in p.choices]
    for where, name in names:
        try:
            t.check_model_name(str(name))
        except UnknownNameError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def validate_tune_config(config: TuneConfig) -> tuple[dict[str, Any], SearchSpace, str]:
    """Everything that can be checked before the first trial.

    Returns:
        ``(base train mapping, search space, dataset task)``.

    Raises:
        ConfigError: no dataset, a bad base train config, space or objective.
        DatasetError: the dataset cannot be loaded or its task cannot be trained.
    """
    from pydantic import ValidationError

    from cvpipe.config import _explain
    from cvpipe.data.manifest import Dataset
    from cvpipe.engine.config import TrainConfig
    from cvpipe.errors import DatasetError

    if not config.dataset:
        raise ConfigError("dataset: give the dataset directory (dataset: PATH or --dataset PATH)")
    base = config.base_train()
    source = config.train if isinstance(config.train, str) else "train"
    try:
        TrainConfig.model_validate(base)
    except ValidationError as exc:
        raise _explain(TrainConfig, exc, f"{source} (base train config)") from None
    space = config.search_space
    space.validate(base)
    ds = Dataset.load(config.dataset)
    if not get_task(ds.task).tunable:
        tunable = [n for n in task_names() if get_task(n).tunable]
        raise DatasetError(
            f"{ds.root}: task {ds.task!r} cannot be tuned (tunable: {', '.join(tunable)})"
        )
    check_objective(config.objective.metric, ds.task)
    check_model_names(base, space, ds.task)
    if config.strategy == "grid":
        space.grid()
    return base, space, ds.task
