"""One trial: a training run scored by the objective metric, recorded in the study.

:class:`TrialObjective` is what Optuna calls for each trial: it draws the parameters,
applies them to the base train config, trains into ``OUT/trials/trial_NNNN`` and returns
:func:`objective_value`; :class:`TrialReporter` reports the objective after each epoch
and stops a run the pruner prunes. A trial that raises is recorded as FAIL with its
error; :func:`budget_used` counts the trials that use the study's budget.

Example:
    >>> objective_value([{"epoch": 1, "val.loss": 0.5}, {"epoch": 2, "val.loss": 0.4}],
    ...                 "val.loss", "minimize", "best")
    0.4
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cvpipe.tune.storage as S
from cvpipe.engine.callbacks import Callback, TrainState
from cvpipe.errors import ConfigError, CvpipeError
from cvpipe.tune.config import TuneConfig
from cvpipe.tune.space import SearchSpace, apply_params

log = logging.getLogger(__name__)


class TrialFailed(CvpipeError):
    """A trial's run raised; the trial is recorded as FAIL and the study goes on."""


class BudgetReached(TrialFailed):
    """Other workers used the last slots first; this trial is skipped without training."""


class ObjectiveNotRecorded(ConfigError):
    """The run does not record the objective metric: every trial would fail, so stop."""


def _counts(t: Any, states: Any) -> bool:
    """Does trial ``t`` use a slot of the budget (or may it, while running)?"""
    if t.state in (states.COMPLETE, states.PRUNED, states.RUNNING):
        return True
    return t.state == states.FAIL and "error" in t.user_attrs


def budget_used(study: Any, before: int | None = None) -> int:
    """Trials using the budget (complete, pruned, running, failed by their own error).

    Args:
        before: count only trials numbered below this one.
    """
    states = S.import_optuna().trial.TrialState
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if _counts(t, states) and (before is None or t.number < before)
    )


def objective_value(
    history: list[dict[str, Any]], metric: str, direction: str, reduce: str
) -> float:
    """The trial's score from its epoch rows (best or last epoch).

    Raises:
        ObjectiveNotRecorded: the rows do not hold ``metric``.
        TrialFailed: no epoch ran, or every value is NaN.
    """
    if not history:
        raise TrialFailed("the run recorded no epoch")
    if metric not in history[-1]:
        keys = sorted(k for k in history[-1] if k not in ("kind", "epoch"))
        raise ObjectiveNotRecorded(
            f"objective.metric {metric!r} is not recorded by the run; recorded: {', '.join(keys)}"
        )
    values = [float(r[metric]) for r in history if r.get(metric) is not None]
    finite = [v for v in values if not math.isnan(v)]
    if reduce == "last":
        value = values[-1]
    elif finite:
        value = min(finite) if direction == "minimize" else max(finite)
    else:
        value = float("nan")
    if math.isnan(value):
        raise TrialFailed(f"objective {metric} is NaN")
    return value


class TrialReporter(Callback):
    """Reports the objective after each epoch to the Optuna trial; stops a pruned run.

    Args:
        trial: the live ``optuna.Trial``.
        metric: the objective metric.
        prune: ask the pruner after each report.
    """

    def __init__(self, trial: Any, metric: str, prune: bool) -> None:
        self.trial = trial
        self.metric = metric
        self.prune = prune
        self.pruned_at: int | None = None

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        if self.metric not in row:
            keys = ", ".join(sorted(k for k in row if k not in ("kind", "epoch")))
            raise ObjectiveNotRecorded(
                f"objective.metric {self.metric!r} is not recorded by the run; recorded: {keys}"
            )
        value = float(row[self.metric])
        epoch = int(row.get("epoch", state.epoch + 1))
        if not math.isnan(value):
            self.trial.report(value, epoch)
        if self.prune and self.trial.should_prune():
            self.pruned_at = epoch
            state.stop = True
            state.stop_reason = f"pruned by the tuner at epoch {epoch} ({self.metric}={value:.4g})"


class TrialObjective:
    """The objective Optuna calls: one training run per trial."""

    def __init__(
        self,
        config: TuneConfig,
        base: dict[str, Any],
        space: SearchSpace,
        out: Path,
        max_trials: int,
    ) -> None:
        self.config = config
        self.base = base
        self.space = space
        self.out = out
        self.max_trials = max_trials
        self.direction = config.objective.resolved_direction
        self.identity = S.worker_identity()
        self.tracking = tracking_of(base)
        self.parent_run_id: str | None = None
        if self.tracking.enabled:
            from cvpipe.tracking.study import study_parent

            self.parent_run_id = study_parent(self.tracking, config.study_name, out)

    def __call__(self, trial: Any) -> float:
        from pydantic import ValidationError

        from cvpipe.engine.config import TrainConfig
        from cvpipe.engine.trainer import train

        optuna = S.import_optuna()
        for k, v in self.identity.items():
            trial.set_user_attr(k, v)
        run_dir = (self.out / "trials" / f"trial_{trial.number:04d}").resolve()
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("dataset", str(Path(str(self.config.dataset)).resolve()))
        if budget_used(trial.study, before=trial.number) >= self.max_trials:
            trial.set_user_attr("skipped", "max_trials already used by other workers")
            raise BudgetReached(f"trial {trial.number}: budget of {self.max_trials} trials used")
        params = self.space.suggest(trial)
        try:
            cfg = TrainConfig.model_validate(apply_params(self.base, params))
        except ValidationError as exc:
            return self._fail(
                trial, f"invalid parameter combination {params}: {exc.errors()[0]['msg']}"
            )
        trial.set_user_attr("config", cfg.model_dump(mode="json"))
        reporter = TrialReporter(trial, self.config.objective.metric, self.config.pruning.enabled)
        callbacks: list[Callback] = [reporter]
        if cfg.tracking.enabled:
            from cvpipe.tracking.callback import TrackingCallback

            callbacks.append(
                TrackingCallback(
                    cfg.tracking, parent_run_id=self.parent_run_id, run_name=run_dir.name,
                    tags={"cvpipe.study": self.config.study_name, "cvpipe.trial": trial.number,
                          **{f"param.{k}": v for k, v in params.items()}},
                )
            )  # fmt: skip
        log.info("trial %d: %s → %s", trial.number, _fmt_params(params), run_dir)
        try:
            result = train(str(self.config.dataset), run_dir, cfg, callbacks=callbacks)
            obj = self.config.objective
            value = objective_value(result.history, obj.metric, self.direction, obj.reduce)
        except (ObjectiveNotRecorded, TrialFailed) as exc:
            trial.set_user_attr("error", str(exc))
            raise
        except Exception as exc:  # any run failure: record it, keep the study going
            return self._fail(trial, f"{type(exc).__name__}: {exc}")
        trial.set_user_attr("epochs_run", len(result.history))
        trial.set_user_attr("best_epoch", result.best_epoch)
        if reporter.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at epoch {reporter.pruned_at}")
        return value

    def _fail(self, trial: Any, message: str) -> float:
        trial.set_user_attr("error", message[:2000])
        log.warning("trial %d failed: %s", trial.number, message)
        raise TrialFailed(message)


def tracking_of(base: Mapping[str, Any]) -> Any:
    """The :class:`~cvpipe.tracking.config.TrackingConfig` the trials run with."""
    from cvpipe.tracking.config import TrackingConfig

    return TrackingConfig.model_validate(base.get("tracking") or {})


def _fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
