"""``TrackingCallback``: the trainer hook that mirrors a run into MLflow and/or TensorBoard.

What is logged:

- at the start: the resolved config (MLflow params, dotted keys; a TensorBoard text),
  tags (run directory, dataset, task, model);
- every step row (``step.loss``, ``step.lr``, ``step.img_per_s``... at the global step)
  when ``log_steps``, every epoch row (``train.loss``, ``val.accuracy``... at the epoch);
- at the end: the training-health findings (``health.findings`` and one
  ``health.fired.RULE`` tag per fired rule), and as artifacts ``config.yaml``,
  ``dataset.lock``, ``metrics.jsonl``, ``model_card.json``, ``health/findings.json`` and
  ``health/report.html``; the MLflow run ends FINISHED (FAILED when training raised).

``RUN/tracking.json`` records the MLflow run id and the TensorBoard directory, so that
``--resume`` continues the same MLflow run and ``cvpipe eval RUN`` adds its metrics and
report to it (:func:`cvpipe.tracking.hooks.log_evaluation`).

Example:
    >>> train("datasets/bins", "runs/a", cfg, callbacks=[TrackingCallback(TrackingConfig(backends=["mlflow"]))])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvpipe.engine.callbacks import Callback, TrainState
from cvpipe.io import read_json, write_json
from cvpipe.tracking.config import TrackingConfig
from cvpipe.tracking.mlflow_store import MlflowTracker, numeric

log = logging.getLogger(__name__)

TRACKING_JSON = "tracking.json"
RUN_ARTIFACTS = ("config.yaml", "dataset.lock", "metrics.jsonl", "model_card.json")
HEALTH_ARTIFACTS = ("health/findings.json", "health/report.html")
_ROW_KEYS = ("kind", "epoch", "step", "global_step")


class TrackingCallback(Callback):
    """Logs a training run to the backends of ``config`` (see the module docstring).

    Args:
        config: the :class:`TrackingConfig`.
        parent_run_id: MLflow run this one is a child of (a tuning study's run).
        tags: extra tags (e.g. the trial number).
        run_name: MLflow run name (default ``config.run_name``, else the run dir's name).
    """

    def __init__(
        self,
        config: TrackingConfig,
        *,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        run_name: str | None = None,
    ) -> None:
        self.config = config
        self.parent_run_id = parent_run_id
        self.tags = {k: str(v) for k, v in (tags or {}).items()}
        self.run_name = run_name
        self.mlflow: MlflowTracker | None = None
        self.tb: Any = None

    # -- hooks ----------------------------------------------------------------------------
    def on_train_start(self, state: TrainState) -> None:
        run_dir = Path(state.run_dir)
        params = state.config.model_dump(mode="json")
        previous = read_json(run_dir / TRACKING_JSON) if (run_dir / TRACKING_JSON).is_file() else {}
        lock = read_json(run_dir / "dataset.lock") if (run_dir / "dataset.lock").is_file() else {}
        tags = {
            "cvpipe.run_dir": str(run_dir.resolve()), "cvpipe.task": state.task,
            "cvpipe.model": str(getattr(state.config, "model", "")), "cvpipe.dataset": str(lock.get("dataset", "")),
            **self.tags,
        }  # fmt: skip
        record: dict[str, Any] = {}
        if "mlflow" in self.config.backends:
            old = previous.get("mlflow") or {}
            if old.get("run_id") and state.history:  # --resume: continue the same run
                self.mlflow = MlflowTracker.attach(old["uri"], old["run_id"])
            else:
                self.mlflow = MlflowTracker.start(
                    experiment=self.config.experiment, uri=self.config.uri,
                    run_name=self.run_name or self.config.run_name or run_dir.name,
                    tags=tags, parent_run_id=self.parent_run_id,
                )  # fmt: skip
                self.mlflow.log_params(params)
            record["mlflow"] = {"uri": self.mlflow.uri, "run_id": self.mlflow.run_id,
                                "experiment_id": self.mlflow.experiment_id}  # fmt: skip
        if "tensorboard" in self.config.backends:
            from cvpipe.tracking.tensorboard_writer import TensorBoardTracker

            tb_dir = Path(self.config.tensorboard_dir or run_dir / "tensorboard")
            self.tb = TensorBoardTracker(tb_dir)
            self.tb.log_params(params)
            record["tensorboard"] = {"dir": str(tb_dir.resolve())}
        write_json(run_dir / TRACKING_JSON, record)

    def on_step_end(self, state: TrainState, row: dict[str, Any]) -> None:
        if not self.config.log_steps:
            return
        metrics = {f"step.{k}": v for k, v in numeric(row, _ROW_KEYS).items()}
        step = int(row.get("global_step", state.global_step))
        if self.mlflow is not None:
            self.mlflow.log_metrics(metrics, step, flush=False)
        if self.tb is not None:
            self.tb.log_metrics(metrics, step, flush=False)

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        metrics = numeric(row, _ROW_KEYS)
        epoch = int(row.get("epoch", state.epoch + 1))
        if self.mlflow is not None:
            self.mlflow.log_metrics(metrics, epoch)
        if self.tb is not None:
            self.tb.log_metrics(metrics, epoch)

    def on_train_end(self, state: TrainState) -> None:
        self._finish(state, "FINISHED")

    def on_train_failed(self, state: TrainState, error: BaseException) -> None:
        try:
            self._finish(state, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        except Exception:  # never hide the training error
            log.exception("tracking: could not close the tracked run")

    # -- end of run -----------------------------------------------------------------------
    def _finish(self, state: TrainState, status: str) -> None:
        run_dir = Path(state.run_dir)
        health = self._health(run_dir)
        if self.mlflow is not None:
            if health is not None:
                self.mlflow.log_metrics({"health.findings": float(len(health))}, state.global_step)
                self.mlflow.set_tags({f"health.fired.{r}": "true" for r in health})
            for rel in (*RUN_ARTIFACTS, *HEALTH_ARTIFACTS):
                p = run_dir / rel
                if p.is_file():
                    self.mlflow.log_artifact(p, str(Path(rel).parent) if "/" in rel else None)
            self.mlflow.end(status)
        if self.tb is not None:
            if (run_dir / "model_card.json").is_file():
                self.tb.log_text(
                    "model_card", (run_dir / "model_card.json").read_text(encoding="utf-8")
                )
            if health is not None:
                self.tb.log_text("health", "fired: " + (", ".join(health) or "none"))
            self.tb.end()

    @staticmethod
    def _health(run_dir: Path) -> list[str] | None:
        path = run_dir / "health" / "findings.json"
        if not path.is_file():
            return None
        return [str(r) for r in read_json(path).get("fired", [])]
