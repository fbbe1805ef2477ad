"""Tracking of a tuning study: one parent MLflow run per study, each trial a child run.

The parent is found by its tags (``cvpipe.role=study``, ``cvpipe.study=NAME``) in the
experiment, or created, and its id kept in ``OUT/tracking.json``, so worker processes and
a resumed study attach their trials to the same parent. When the study ends the parent
gets every completed trial's objective (metric ``objective`` at step = trial number),
the best trial's parameters and value, and ``results.csv`` / ``report.html`` as artifacts.
TensorBoard needs no parent: each trial writes ``OUT/trials/trial_NNNN/tensorboard``, so
``tensorboard --logdir OUT/trials`` shows the trials side by side.

Example:
    >>> parent = study_parent(cfg.tracking, "seed001", Path("tune/seed001"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvpipe.io import read_json, write_json
from cvpipe.tracking.config import TrackingConfig
from cvpipe.tracking.mlflow_store import MlflowTracker, quiet

log = logging.getLogger(__name__)

STUDY_TRACKING = "tracking.json"


def study_parent(tracking: TrackingConfig, study: str, out: Path) -> str | None:
    """The MLflow run id of the study's parent run (found or created); None without MLflow."""
    if "mlflow" not in tracking.backends:
        return None
    client, uri, artifacts = MlflowTracker.client_for(tracking.uri)
    eid = MlflowTracker.experiment_for(client, tracking.experiment, artifacts)
    path = out / STUDY_TRACKING
    if path.is_file():
        rec = read_json(path).get("mlflow") or {}
        if rec.get("uri") == uri and rec.get("run_id"):
            return str(rec["run_id"])
    with quiet():
        found = client.search_runs(
            [eid],
            filter_string=f"tags.`cvpipe.role` = 'study' and tags.`cvpipe.study` = '{study}'",
            max_results=1,
        )
    if found:
        run_id = str(found[0].info.run_id)
    else:
        t = MlflowTracker.start(
            experiment=tracking.experiment, uri=tracking.uri, run_name=study,
            tags={"cvpipe.role": "study", "cvpipe.study": study, "cvpipe.out": str(out.resolve())},
        )  # fmt: skip
        run_id = t.run_id
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, {"mlflow": {"uri": uri, "run_id": run_id, "experiment_id": eid}})
    return run_id


def finish_study(
    tracking: TrackingConfig, out: Path, rows: Sequence[Any], files: Sequence[Path | None]
) -> None:
    """Log the study's trials, best trial and files to its parent run and close it."""
    path = out / STUDY_TRACKING
    if "mlflow" not in tracking.backends or not path.is_file():
        return
    rec = read_json(path)["mlflow"]
    t = MlflowTracker.attach(rec["uri"], rec["run_id"])
    done = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
    for r in sorted(done, key=lambda r: r.number):
        t.log_metrics({"objective": float(r.value)}, step=int(r.number), flush=False)
    t.flush()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    t.set_tags({f"trials.{k.lower()}": v for k, v in counts.items()})
    if done:
        best = done[0]
        t.log_metrics({"best.objective": float(best.value)}, step=int(best.number))
        t.log_params({f"best.{k}": v for k, v in best.params.items()})
        t.set_tags({"best.trial": best.number})
    for f in files:
        if f is not None and Path(f).is_file():
            t.log_artifact(f)
    t.end("FINISHED")
