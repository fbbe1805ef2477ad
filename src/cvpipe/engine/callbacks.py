"""Trainer hooks: observe a run (health collector, loggers) or stop it (early stopping).

A callback subclasses :class:`Callback` and overrides any of ``on_train_start``,
``on_optimizer_step``, ``on_step_end``, ``on_epoch_end``, ``on_train_end``,
``on_train_failed``. Each receives the live :class:`TrainState`; ``on_step_end`` and
``on_epoch_end`` also get the row just written to ``metrics.jsonl``. Setting
``state.stop = True`` ends the run after the current epoch (in a single-process run,
right after the current optimizer step). Only rank 0 runs callbacks in a distributed run.

Example:
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, state, row):
    ...         log.info("epoch %d val.loss %.3f", state.epoch, row["val.loss"])
    >>> train("datasets/bins", "runs/a", cfg, callbacks=[PrintLoss()])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What callbacks may read (and ``stop``, which they may set).

    Attributes:
        run_dir: the run directory.
        config: the resolved :class:`~cvpipe.engine.config.TrainConfig`.
        task: ``classify`` | ``count`` (``detect`` later).
        model: the model being trained (the head alone on cached features).
        optimizer: the optimizer.
        epoch: current 0-based epoch.
        step: optimizer step within the epoch (1-based after the first step).
        global_step: optimizer steps since the run began.
        epochs: total epochs planned.
        steps_per_epoch: optimizer steps per epoch.
        history: epoch rows so far.
        best: best value of the monitored metric so far (None before the first epoch).
        stop: set True to stop after this epoch; ``stop_reason`` says why.
    """

    run_dir: Path
    config: Any
    task: str
    model: nn.Module
    optimizer: Any
    epochs: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    stop: bool = False
    stop_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Base class: every hook does nothing."""

    def on_train_start(self, state: TrainState) -> None:
        """Called once before the first (or resumed) epoch."""

    def on_optimizer_step(self, state: TrainState, info: dict[str, Any]) -> None:
        """Called after every optimizer step (not only logged ones) with ``global_step``,
        ``loss``, ``n``, ``lr``, ``data_s`` and ``compute_s``; must be cheap."""

    def on_step_end(self, state: TrainState, row: dict[str, Any]) -> None:
        """Called after every optimizer step with its metrics row (loss, lr, img_per_s...)."""

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        """Called after validation and checkpointing with the epoch row."""

    def on_train_end(self, state: TrainState) -> None:
        """Called once when training ends normally (also after early stopping)."""

    def on_train_failed(self, state: TrainState, error: BaseException) -> None:
        """Called once when training ends with an exception (it is re-raised afterwards);
        must not raise itself."""


class CallbackList(Callback):
    """Calls each callback in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_train_start(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_train_start(state)

    def on_optimizer_step(self, state: TrainState, info: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_optimizer_step(state, info)

    def on_step_end(self, state: TrainState, row: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_step_end(state, row)

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(state, row)

    def on_train_end(self, state: TrainState) -> None:
        for cb in self.callbacks:
            cb.on_train_end(state)

    def on_train_failed(self, state: TrainState, error: BaseException) -> None:
        for cb in self.callbacks:
            try:
                cb.on_train_failed(state, error)
            except Exception:  # never hide the original error
                log.exception(
                    "callback %s failed while handling a training error", type(cb).__name__
                )


class Monitor:
    """Tracks the best value of one metric and epochs without improvement.

    Args:
        metric: epoch-row key (``val.loss``...).
        mode: ``min`` or ``max``.
        patience: epochs without improvement before ``should_stop`` (None = never).
        min_delta: smallest improvement that counts.
    """

    def __init__(
        self, metric: str, mode: str, patience: int | None = None, min_delta: float = 0.0
    ) -> None:
        self.metric = metric
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def update(self, epoch: int, row: dict[str, Any]) -> bool:
        """Record an epoch; True when it is a new best.

        Raises:
            KeyError: the metric is not in the row (message lists the recorded keys).
        """
        if self.metric not in row:
            keys = ", ".join(sorted(k for k in row if k not in ("kind", "epoch")))
            raise KeyError(
                f"early_stopping.metric {self.metric!r} is not recorded; recorded metrics: {keys}"
            )
        value = float(row[self.metric])
        if math.isnan(value):
            improved = False
        elif self.best is None:
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.best = d.get("best")
        self.best_epoch = d.get("best_epoch")
        self.bad_epochs = int(d.get("bad_epochs", 0))
