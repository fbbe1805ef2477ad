"""A tuning study with tracking on: one MLflow parent run, each trial a child run (read
back through MLflow's client), TensorBoard files per trial."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvpipe.tune.tuner import tune

pytest.importorskip("mlflow")


def test_trials_are_child_runs_of_the_study(
    make_tune, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from cvpipe.tracking.mlflow_store import quiet

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    cfg = make_tune(max_trials=3, report=True, tracking="mlflow,tensorboard")
    result = tune(cfg)
    c = MlflowClient(tracking_uri=uri)
    with quiet():
        exp = c.get_experiment_by_name("cvpipe")
        parents = c.search_runs([exp.experiment_id], "tags.`cvpipe.role` = 'study'")
        assert len(parents) == 1
        parent = parents[0]
        children = c.search_runs(
            [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        )
        objective = c.get_metric_history(parent.info.run_id, "objective")
        parent_files = {f.path for f in c.list_artifacts(parent.info.run_id)}
    assert parent.data.tags["cvpipe.study"] == result.study == "out"
    assert parent.info.status == "FINISHED"
    assert sorted(r.data.tags["cvpipe.trial"] for r in children) == ["0", "1", "2"]
    assert sorted(r.info.run_name for r in children) == ["trial_0000", "trial_0001", "trial_0002"]
    assert all(r.info.status == "FINISHED" for r in children)
    for r in children:  # each child holds its trial's parameters and epoch metrics
        t = int(r.data.tags["cvpipe.trial"])
        run_dir = tmp_path / "out" / "trials" / f"trial_{t:04d}"
        rec = json.loads((run_dir / "tracking.json").read_text())
        assert rec["mlflow"]["run_id"] == r.info.run_id
        assert float(r.data.params["optimizer.lr"]) == pytest.approx(
            float(r.data.tags["param.optimizer.lr"])
        )
        assert "val.loss" in r.data.metrics
        assert (run_dir / "tensorboard").is_dir()
    # the parent holds each completed trial's objective at step = trial number
    assert len(objective) == result.counts.get("COMPLETE", 0) >= 1
    assert result.best is not None
    best = next(m for m in objective if m.step == result.best.number)
    assert best.value == pytest.approx(result.best.value)
    assert {"results.csv", "report.html"} <= parent_files
    assert parent.data.params  # best trial's parameters
    assert (
        json.loads((tmp_path / "out" / "tracking.json").read_text())["mlflow"]["run_id"]
        == parent.info.run_id
    )


def test_tune_level_tracking_replaces_the_base_train_setting(make_tune) -> None:
    from cvpipe.config import load_config
    from cvpipe.tune.config import TuneConfig

    cfg = make_tune(train={"tracking": "tensorboard"})
    assert cfg.base_train()["tracking"] == "tensorboard"  # the base's own setting by default
    cfg2 = load_config(
        TuneConfig, values=cfg.model_dump(mode="json"), overrides=["tracking=mlflow"]
    )
    assert cfg2.base_train()["tracking"]["backends"] == ["mlflow"]
