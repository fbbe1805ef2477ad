"""Where tracking meets the rest of cvpipe: the trainer's callback list and evaluation.

- :func:`with_tracking`: the trainer's callbacks plus a :class:`TrackingCallback` when the
  config asks for tracking (unless the caller passed one, as the tuner does), trackers
  last so that they see the health findings written by the health collector;
- :func:`log_evaluation`: after ``cvpipe eval RUN``, the eval metrics (``eval.*``) and
  ``metrics.json`` / ``report.html`` go to the run's MLflow run and TensorBoard directory
  recorded in ``RUN/tracking.json`` (nothing happens for an untracked run).

Example:
    >>> callbacks = with_tracking([reporter, health], cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvpipe.io import read_json

log = logging.getLogger(__name__)


def with_tracking(callbacks: Sequence[Any], config: Any) -> list[Any]:
    """``callbacks`` with the run's tracking callback added (if asked for) and moved last."""
    from cvpipe.tracking.callback import TrackingCallback

    cbs = list(callbacks)
    tracking = getattr(config, "tracking", None)
    if (
        tracking is not None
        and tracking.enabled
        and not any(isinstance(c, TrackingCallback) for c in cbs)
    ):
        cbs.append(TrackingCallback(tracking))
    return [c for c in cbs if not isinstance(c, TrackingCallback)] + [
        c for c in cbs if isinstance(c, TrackingCallback)
    ]


def _flat_metrics(metrics: Mapping[str, Any], prefix: str = "eval.") -> dict[str, float]:
    from cvpipe.tracking.mlflow_store import numeric

    out = dict(numeric({f"{prefix}{k}": v for k, v in metrics.items()}))
    for k, v in metrics.items():  # one level down: macro / weighted averages
        if isinstance(v, Mapping) and k in ("macro", "weighted", "counting"):
            out.update(numeric({f"{prefix}{k}.{kk}": vv for kk, vv in v.items()}))
    return out


def log_evaluation(run: str | Path, out_dir: str | Path, metrics: Mapping[str, Any]) -> bool:
    """Log an evaluation of a tracked run; returns False when the run is not tracked.

    Failures to reach the tracking store are logged as warnings, never raised: the
    evaluation itself has succeeded and its files are written.
    """
    from cvpipe.tracking.callback import TRACKING_JSON

    path = Path(run) / TRACKING_JSON
    if not path.is_file():
        return False
    record = read_json(path)
    values = _flat_metrics(metrics)
    out_dir = Path(out_dir)
    try:
        if record.get("mlflow"):
            from cvpipe.tracking.mlflow_store import MlflowTracker

            m = record["mlflow"]
            before = MlflowTracker.client_for(m["uri"])[0].get_run(m["run_id"]).info.status
            t = MlflowTracker.attach(m["uri"], m["run_id"])
            t.log_metrics(values, step=0)
            for name in ("metrics.json", "report.html"):
                if (out_dir / name).is_file():
                    t.log_artifact(out_dir / name, "eval")
            t.end(before if before in ("FINISHED", "FAILED", "KILLED") else "FINISHED")
        if record.get("tensorboard"):
            from cvpipe.tracking.tensorboard_writer import TensorBoardTracker

            tb = TensorBoardTracker(record["tensorboard"]["dir"])
            tb.log_metrics(values, step=0)
            tb.end()
    except Exception as exc:  # noqa: BLE001 - the evaluation succeeded; say why tracking did not
        log.warning("evaluation not logged to tracking (%s): %s: %s", path, type(exc).__name__, exc)
        return False
    return True
