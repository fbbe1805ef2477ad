"""Hyperparameter tuning: Optuna studies whose trials are ordinary cvpipe runs.

- :mod:`cvpipe.tune.space`: search spaces over any ``TrainConfig`` key (dotted paths).
- :mod:`cvpipe.tune.config`: :class:`TuneConfig` and the checks made before any trial.
- :mod:`cvpipe.tune.tuner`: :func:`tune` (resumable, pruning), over :mod:`cvpipe.tune.trial`
  (one trial: a run scored by the objective), :mod:`cvpipe.tune.study` (sampler, pruner,
  warm start) and :mod:`cvpipe.tune.workers` (local and remote worker processes).
- :mod:`cvpipe.tune.storage`: SQLite / PostgreSQL storage, study references.
- :mod:`cvpipe.tune.report`: trials table, CSV and HTML report.

Optuna is imported only when a study is opened, so importing this package is cheap.

Example:
    >>> from cvpipe.tune import TuneConfig, tune  # doctest: +SKIP
    >>> result = tune(load_config(TuneConfig, "recipes/seed001_tune.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

from cvpipe.tune.config import TuneConfig, validate_tune_config
from cvpipe.tune.space import SearchSpace, apply_params
from cvpipe.tune.tuner import TuneResult, tune

__all__ = [
    "SearchSpace",
    "TuneConfig",
    "TuneResult",
    "apply_params",
    "tune",
    "validate_tune_config",
]
