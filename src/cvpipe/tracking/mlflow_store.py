"""MLflow backend: one MLflow run per cvpipe run, written through ``MlflowClient``.

No global MLflow state is touched (no ``mlflow.start_run``): every call names its run, so
trials in one process, worker processes and tests do not step on each other.

The store is ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else a local SQLite store
``./mlruns/mlflow.db`` with artifacts in ``./mlruns/artifacts`` (MLflow 3 refuses a plain
``./mlruns`` file store unless ``MLFLOW_ALLOW_FILE_STORE=true``; SQLite needs no server).
Browse it with ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`` (the UI
needs the full ``mlflow`` package; cvpipe itself only needs ``mlflow-skinny``).

Example:
    >>> t = MlflowTracker.start(experiment="bins", run_name="r50", params={"lr": 0.01})  # doctest: +SKIP
    >>> t.log_metrics({"val.loss": 0.3}, step=1); t.end()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cvpipe.errors import MissingDependencyError

log = logging.getLogger(__name__)

DEFAULT_DIR = "mlruns"
PARAM_MAX = 6000  # MLflow's limit on a parameter value
BATCH = 200  # metrics per log_batch call (MLflow allows 1000)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the deprecation noise MLflow's SQL store raises through SQLAlchemy/Alembic."""
    with warnings.catch_warnings():
        for mod in ("mlflow", "sqlalchemy", "alembic", "google", "pydantic"):
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=rf"{mod}(\.|$)")
            warnings.filterwarnings("ignore", category=FutureWarning, module=rf"{mod}(\.|$)")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
        yield


def import_mlflow() -> Any:
    """``mlflow`` (the tracking client), or a clear error saying how to install it.

    Raises:
        MissingDependencyError: mlflow is not installed.
    """
    try:
        with quiet():
            import mlflow
            import mlflow.tracking  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "tracking=mlflow needs MLflow: pip install 'cvpipe[track]' (or pip install mlflow-skinny)"
        ) from None
    return mlflow


def resolve_uri(uri: str | None = None) -> tuple[str, str | None]:
    """The tracking URI and, for the default local store, its artifact root.

    Returns:
        ``(uri, artifact_root)``; ``artifact_root`` is None when MLflow chooses.
    """
    if uri:
        return uri, None
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, None
    root = Path(DEFAULT_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` → ``{"a.b": "1"}`` (lists as JSON), values cut to MLflow's limit.

    Example:
        >>> flatten({"optimizer": {"lr": 0.01}, "head": None})
        {'optimizer.lr': '0.01', 'head': 'None'}
    """
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            text = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
            out[key] = text[:PARAM_MAX]
    return out


def numeric(row: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, float]:
    """The finite numeric entries of a metrics row (bools and text left out)."""
    out = {}
    for k, v in row.items():
        if k in skip or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):
            out[k] = float(v)
    return out


class MlflowTracker:
    """An open MLflow run (see the module docstring); use :meth:`start` or :meth:`attach`."""

    def __init__(self, client: Any, run_id: str, uri: str, experiment_id: str) -> None:
        self.client, self.run_id, self.uri, self.experiment_id = client, run_id, uri, experiment_id
        self._pending: list[Any] = []

    @staticmethod
    def client_for(uri: str | None) -> tuple[Any, str, str | None]:
        import_mlflow()
        from mlflow.tracking import MlflowClient

        resolved, artifacts = resolve_uri(uri)
        with quiet():
            return MlflowClient(tracking_uri=resolved), resolved, artifacts

    @staticmethod
    def experiment_for(client: Any, name: str, artifacts: str | None) -> str:
        with quiet():
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return str(exp.experiment_id)
            location = f"{artifacts}/{name}" if artifacts else None
            try:
                return str(client.create_experiment(name, artifact_location=location))
            except Exception:  # another process created it first
                exp = client.get_experiment_by_name(name)
                if exp is None:
                    raise
                return str(exp.experiment_id)

    @classmethod
    def start(
        cls,
        *,
        experiment: str,
        uri: str | None = None,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> MlflowTracker:
        """Create a run (a child of ``parent_run_id`` when given) and log ``params``."""
        client, resolved, artifacts = cls.client_for(uri)
        eid = cls.experiment_for(client, experiment, artifacts)
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        with quiet():
            run = client.create_run(eid, run_name=run_name, tags=all_tags)
        t = cls(client, run.info.run_id, resolved, eid)
        if params:
            t.log_params(params)
        log.info("MLflow run %s in %s (experiment %s)", t.run_id, resolved, experiment)
        return t

    @classmethod
    def attach(cls, uri: str, run_id: str) -> MlflowTracker:
        """Reopen an existing run (resume, evaluation) and mark it running."""
        client, resolved, _ = cls.client_for(uri)
        with quiet():
            run = client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
        return cls(client, run_id, resolved, str(run.info.experiment_id))

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        with quiet():
            have = self.client.get_run(self.run_id).data.params
            items = [Param(k, v) for k, v in flat.items() if k not in have]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        with quiet():
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int, flush: bool = True) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self._pending += [Metric(k, float(v), ts, int(step)) for k, v in metrics.items()]
        if flush or len(self._pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        with quiet():
            while self._pending:
                chunk, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                self.client.log_batch(self.run_id, metrics=chunk)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        with quiet():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self.flush()
        with quiet():
            self.client.set_terminated(self.run_id, status=status)
