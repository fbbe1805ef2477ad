"""Run tracking: every training run (and tuning trial, and evaluation) also logged to
MLflow and/or TensorBoard, through the trainer's callback mechanism.

- :mod:`~cvpipe.tracking.config`: :class:`TrackingConfig`, the ``tracking`` section of a
  train config (``--set tracking=mlflow``, ``tensorboard`` or ``mlflow,tensorboard``);
- :mod:`~cvpipe.tracking.callback`: :class:`~cvpipe.tracking.callback.TrackingCallback`;
- :mod:`~cvpipe.tracking.mlflow_store` and :mod:`~cvpipe.tracking.tensorboard_writer`:
  the two backends (imported only when used; ``pip install 'cvpipe[track]'``);
- :mod:`~cvpipe.tracking.hooks`: the trainer's and evaluation's entry points;
- :mod:`~cvpipe.tracking.study`: a tuning study as a parent MLflow run of its trials.

Example:
    >>> cfg = load_config(TrainConfig, overrides=["tracking=mlflow,tensorboard"])  # doctest: +SKIP
    >>> cfg.tracking.backends  # doctest: +SKIP
    ['mlflow', 'tensorboard']
"""

from __future__ import annotations

from cvpipe.tracking.config import TrackingConfig

__all__ = ["TrackingConfig"]
