"""Tracking: a real local MLflow store and TensorBoard event files, read back through
MLflow's own client and TensorBoard's EventAccumulator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from tinydata import make_dataset  # noqa: E402

from cvpipe.config import load_config  # noqa: E402
from cvpipe.engine.config import TrainConfig  # noqa: E402
from cvpipe.engine.trainer import train  # noqa: E402
from cvpipe.errors import ConfigError, MissingDependencyError  # noqa: E402
from cvpipe.tracking.config import TrackingConfig  # noqa: E402
from cvpipe.tracking.mlflow_store import quiet  # noqa: E402

pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "ds", classes=3, per_class=8)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in tmp_path with no MLFLOW_TRACKING_URI: the default local store is used."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "mlruns"


def cfg(tmp_path: Path, *overrides: str) -> TrainConfig:
    base = {
        "model": "base_cnn", "weights": "none", "input_size": 32, "epochs": 2, "batch_size": 8,
        "workers": 0, "feature_cache_dir": str(tmp_path / "features"),
    }  # fmt: skip
    return load_config(TrainConfig, values=base, overrides=list(overrides))


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.mark.parametrize(
    ("value", "backends"),
    [
        ("mlflow", ["mlflow"]),
        ("tensorboard", ["tensorboard"]),
        ("mlflow,tensorboard", ["mlflow", "tensorboard"]),
        ("[mlflow, tensorboard]", ["mlflow", "tensorboard"]),
        ("none", []),
    ],
)
def test_tracking_setting_forms(value: str, backends: list[str]) -> None:
    assert load_config(TrainConfig, overrides=[f"tracking={value}"]).tracking.backends == backends


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="tracking"):
        load_config(TrainConfig, overrides=["tracking=wandb"])
    # the shorthand is a value: a dotted key after it would silently drop it
    with pytest.raises(ConfigError, match="tracking is already set to the value 'mlflow'"):
        load_config(TrainConfig, overrides=["tracking=mlflow", "tracking.experiment=x"])
    assert TrackingConfig().enabled is False and TrainConfig().tracking.backends == []


def test_train_logs_to_mlflow_and_tensorboard(tmp_path: Path, tiny: Path, store: Path) -> None:
    run = tmp_path / "run"
    res = train(
        tiny, run, cfg(tmp_path, "tracking.backends=mlflow,tensorboard", "tracking.experiment=tiny")
    )
    rec = json.loads((run / "tracking.json").read_text())
    uri = rec["mlflow"]["uri"]
    assert uri == f"sqlite:///{(store / 'mlflow.db').resolve()}"  # the default local store
    c = client(uri)
    with quiet():
        mrun = c.get_run(rec["mlflow"]["run_id"])
        exp = c.get_experiment(mrun.info.experiment_id)
        val_loss = c.get_metric_history(mrun.info.run_id, "val.loss")
        step_loss = c.get_metric_history(mrun.info.run_id, "step.loss")
        top = {f.path for f in c.list_artifacts(mrun.info.run_id)}
        health = {f.path for f in c.list_artifacts(mrun.info.run_id, "health")}
    assert exp.name == "tiny" and mrun.info.status == "FINISHED"
    assert mrun.data.params["optimizer.lr"] == "0.001" and mrun.data.params["model"] == "base_cnn"
    assert mrun.data.tags["cvpipe.task"] == "classify"
    assert mrun.data.tags["mlflow.runName"] == "run"
    assert [m.step for m in val_loss] == [1, 2]
    assert [m.value for m in val_loss] == pytest.approx([r["val.loss"] for r in res.history])
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r["kind"] == "step"]
    assert sorted(m.step for m in step_loss) == [r["global_step"] for r in steps]
    assert {"config.yaml", "dataset.lock", "metrics.jsonl", "model_card.json"} <= top
    assert "health/findings.json" in health
    assert "health.findings" in mrun.data.metrics
    # TensorBoard: read the event files back
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert "val/loss" in scalars and "step/loss" in scalars and "train/accuracy" in scalars
    assert [e.step for e in acc.Scalars("val/loss")] == [1, 2]
    assert [e.value for e in acc.Scalars("val/loss")] == pytest.approx(
        [r["val.loss"] for r in res.history], rel=1e-5
    )
    assert any(t.startswith("config") for t in acc.Tags()["tensors"])


def test_mlflow_tracking_uri_is_honoured_and_eval_is_added(
    tmp_path: Path, tiny: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    run = tmp_path / "run"
    train(tiny, run, cfg(tmp_path, "tracking=mlflow"))
    assert not (store / "mlflow.db").exists()  # (MLflow may put artifacts in ./mlruns)
    rec = json.loads((run / "tracking.json").read_text())["mlflow"]
    assert rec["uri"] == other
    from cvpipe.evaluation.evaluate import evaluate_run

    res = evaluate_run(run, split="val", report=True)
    c = client(other)
    with quiet():
        mrun = c.get_run(rec["run_id"])
        arts = {f.path for f in c.list_artifacts(rec["run_id"], "eval")}
    assert mrun.data.metrics["eval.accuracy"] == pytest.approx(res.metrics["accuracy"])
    assert {"eval/metrics.json", "eval/report.html"} <= arts
    assert mrun.info.status == "FINISHED"


def test_resume_continues_the_same_mlflow_run(tmp_path: Path, tiny: Path, store: Path) -> None:
    run = tmp_path / "run"
    train(tiny, run, cfg(tmp_path, "tracking=mlflow", "epochs=1"))
    first = json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"]
    train(tiny, run, cfg(tmp_path, "tracking=mlflow", "epochs=2"), resume=True)
    rec = json.loads((run / "tracking.json").read_text())["mlflow"]
    assert rec["run_id"] == first
    with quiet():
        hist = client(rec["uri"]).get_metric_history(first, "val.loss")
    assert [m.step for m in hist] == [1, 2]


def test_failed_run_is_marked_failed(tmp_path: Path, tiny: Path, store: Path) -> None:
    from cvpipe.engine.callbacks import Callback

    class Boom(Callback):
        def on_epoch_end(self, state, row):  # noqa: ANN001
            raise RuntimeError("boom")

    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        train(tiny, run, cfg(tmp_path, "tracking=mlflow"), callbacks=[Boom()])
    rec = json.loads((run / "tracking.json").read_text())["mlflow"]
    with quiet():
        assert client(rec["uri"]).get_run(rec["run_id"]).info.status == "FAILED"


def test_missing_mlflow_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from cvpipe.tracking.mlflow_store import import_mlflow

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependencyError, match=r"cvpipe\[track\]"):
        import_mlflow()
