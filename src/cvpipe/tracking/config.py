"""``TrackingConfig``: where a run is also logged (the ``tracking`` section of a train config).

``--set tracking=mlflow``, ``--set tracking=tensorboard``, ``--set tracking=mlflow,tensorboard``
or ``--set tracking=[mlflow,tensorboard]`` choose the backends; the other keys are reached
with dotted names once the section is a mapping (``--set tracking.backends=[mlflow]
--set tracking.experiment=bins``). In YAML::

    tracking: mlflow                 # or
    tracking:
      backends: [mlflow, tensorboard]
      experiment: bins
      uri: sqlite:///mlruns/mlflow.db

Example:
    >>> TrackingConfig.model_validate("mlflow,tensorboard").backends
    ['mlflow', 'tensorboard']
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from cvpipe.config import Config

Backend = Literal["mlflow", "tensorboard"]
BACKENDS = ("mlflow", "tensorboard")


class TrackingConfig(Config):
    """Run tracking in MLflow and/or TensorBoard (off by default).

    Attributes:
        backends: ``mlflow``, ``tensorboard``, both, or none (``[]``).
        experiment: MLflow experiment name.
        uri: MLflow tracking URI; default ``$MLFLOW_TRACKING_URI``, else a local SQLite
            store ``./mlruns/mlflow.db`` with artifacts under ``./mlruns/artifacts``.
        run_name: MLflow run name (default: the run directory's name).
        tensorboard_dir: where event files go (default ``RUN/tensorboard``).
        log_steps: also log every step row (loss, lr, img/s), not only epoch rows.
    """

    backends: list[Backend] = Field(default_factory=list)
    experiment: str = "cvpipe"
    uri: str | None = None
    run_name: str | None = None
    tensorboard_dir: str | None = None
    log_steps: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``"mlflow"``, ``"mlflow,tensorboard"``, ``["mlflow"]``, ``"none"`` → backends."""
        if data is None or isinstance(data, bool):
            return {"backends": []} if not data else {"backends": ["mlflow"]}
        if isinstance(data, str):
            data = [p for p in (x.strip() for x in data.split(",")) if p]
        if isinstance(data, (list, tuple)):
            items = [str(x).strip().lower() for x in data]
            return {"backends": [x for x in items if x not in ("none", "off", "")]}
        if isinstance(data, dict) and isinstance(data.get("backends"), str):
            data = dict(data)
            data["backends"] = [p.strip() for p in data["backends"].split(",") if p.strip()]
        return data

    @model_validator(mode="after")
    def _unique(self) -> TrackingConfig:
        if len(set(self.backends)) != len(self.backends):
            raise ValueError(f"tracking backends listed twice: {self.backends}")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.backends)
