"""Trainer: run directory, carved val, resume reproducibility, early stopping, bad input."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from tinydata import make_dataset  # noqa: E402

from cvpipe.cli.main import main  # noqa: E402
from cvpipe.config import load_config  # noqa: E402
from cvpipe.data.manifest import Dataset  # noqa: E402
from cvpipe.engine.callbacks import Callback  # noqa: E402
from cvpipe.engine.config import SchedulerConfig, TrainConfig  # noqa: E402
from cvpipe.engine.optim import LrSchedule  # noqa: E402
from cvpipe.engine.runs import read_metrics  # noqa: E402
from cvpipe.engine.trainer import train  # noqa: E402
from cvpipe.errors import CheckpointError, ConfigError, TrainingDiverged  # noqa: E402
from cvpipe.inference.loading import load_model  # noqa: E402
from cvpipe.tasks import get_task  # noqa: E402

VOLATILE = {"time_s", "img_per_s"}


@pytest.fixture(autouse=True)
def one_thread():
    """The CI/shared machine has 2 cores: one intra-op thread is much faster for tiny nets."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = {
        "model": "base_cnn", "weights": "none", "input_size": 32, "epochs": 2, "batch_size": 8,
        "workers": 0, "feature_cache_dir": str(tmp_path / "features"),
    }  # fmt: skip
    overrides = [f"{k}={json.dumps(v)}" for k, v in kw.items()]
    return load_config(TrainConfig, values=base, overrides=overrides)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "ds", classes=3, per_class=8)


def test_run_directory_contents(tmp_path: Path, tiny: Path) -> None:
    res = train(tiny, tmp_path / "run", cfg(tmp_path))
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "dataset.lock",
        "metrics.jsonl",
        "model_card.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (run / name).is_file(), name
    # config.yaml reloads to the same config
    assert load_config(TrainConfig, run / "config.yaml") == cfg(tmp_path)
    lock = json.loads((run / "dataset.lock").read_text())
    assert lock["val_carved"] is True and lock["seed"] == 0
    assert lock["manifest_sha256"] == Dataset.load(tiny).manifest_hash()
    val_ids = lock["splits"]["val"]
    assert len(val_ids) == 6 and {i[0] for i in val_ids} == {
        "a",
        "b",
        "c",
    }  # stratified: 2 per class
    assert not set(val_ids) & set(lock["splits"]["train"])
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "step"]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert len(epochs) == 2 and len(steps) == 6  # 18 train images / batch 8 = 3 steps per epoch
    for key in (
        "train.loss",
        "train.accuracy",
        "val.loss",
        "val.accuracy",
        "lr",
        "img_per_s",
        "time_s",
    ):
        assert all(key in r for r in epochs), key
    assert {"loss", "lr", "img_per_s", "epoch", "step"} <= set(steps[0])
    ckpt = torch.load(run / "checkpoints" / "best.pt", weights_only=True, map_location="cpu")
    assert {"model", "optimizer", "scheduler", "epoch", "meta"} <= set(ckpt)
    card = json.loads((run / "model_card.json").read_text())
    assert (
        card["task"] == "classify"
        and card["classes"] == ["a", "b", "c"]
        and card["input_size"] == 32
    )
    assert card["metrics"]["best_epoch"] == res.best_epoch
    net, mc = load_model(run)
    assert not net.training and mc.preprocess.input_size == 32
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


class Interrupt(Exception):
    pass


class StopAfter(Callback):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, state, row) -> None:
        if row["epoch"] >= self.epochs:
            raise Interrupt


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in read_metrics(run, kind=None)]


def test_resume_reproduces_uninterrupted_run(tmp_path: Path, tiny: Path) -> None:
    c = cfg(
        tmp_path,
        **{
            "augment.crop": "random-resized",
            "augment.hflip": True,
            "scheduler.name": "cosine",
            "scheduler.warmup_epochs": 0.5,
        },
    )
    train(tiny, tmp_path / "straight", c)
    with pytest.raises(Interrupt):
        train(tiny, tmp_path / "resumed", c, callbacks=[StopAfter(1)])
    assert len(read_metrics(tmp_path / "resumed")) == 1
    res = train(tiny, tmp_path / "resumed", None, resume=True)  # config from the run's config.yaml
    assert len(res.history) == 2
    a, b = _rows(tmp_path / "straight"), _rows(tmp_path / "resumed")
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k, v in ra.items():
            if isinstance(v, float):
                assert rb[k] == pytest.approx(v, abs=1e-6), (ra["epoch"], k)
            else:
                assert rb[k] == v


def test_count_task_with_weights_sampler_accumulation(tmp_path: Path) -> None:
    ds = make_dataset(
        tmp_path / "count", classes=3, per_class=6, task="count", splits={"train": 4, "val": 2}
    )
    c = cfg(
        tmp_path,
        class_weights="auto",
        sampler="weighted",
        accumulate=2,
        label_smoothing=0.1,
        **{"optimizer.name": "sgd", "optimizer.nesterov": True, "scheduler.name": "onecycle"},
    )
    res = train(ds, tmp_path / "run", c)
    lock = json.loads((tmp_path / "run" / "dataset.lock").read_text())
    assert lock["val_carved"] is False and lock["counts"] == {"train": 12, "val": 6}
    assert res.history[-1]["steps"] == 1  # 12 images / batch 8 = 2 micro-batches = 1 optimizer step
    _, card = load_model(tmp_path / "run")
    assert card.task == "count" and card.classes == ["1", "2", "3"]


def test_early_stopping(tmp_path: Path, tiny: Path) -> None:
    c = cfg(
        tmp_path,
        epochs=5,
        **{"optimizer.lr": 1e-12, "early_stopping.patience": 1, "early_stopping.min_delta": 0.1},
    )
    res = train(tiny, tmp_path / "run", c)
    assert res.stopped_early and len(res.history) == 2 and res.best_epoch == 1
    # resuming a finished, early-stopped run does nothing more
    res2 = train(tiny, tmp_path / "run", None, resume=True)
    assert len(res2.history) == 2


def test_nan_loss_stops_with_step_and_keeps_checkpoint(
    tmp_path: Path, tiny: Path, monkeypatch
) -> None:
    calls = {"n": 0}
    real = get_task("classify").step_function()

    def poisoned(model, batch, ctx):
        out = real(model, batch, ctx)
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 2 (3 train steps + 1 val batch per epoch), step 1
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(type(get_task("classify")), "step_function", lambda self: poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, step 1"):
        train(tiny, tmp_path / "run", cfg(tmp_path))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert all(math.isfinite(v.float().sum().item()) for v in ckpt["model"].values())


def test_corrupt_image_is_skipped_and_reported(
    tmp_path: Path, tiny: Path, make_truncated_jpeg
) -> None:
    ds = Dataset.load(tiny)
    bad = next(r for r in ds.records if r.id == "a_000")
    make_truncated_jpeg(tiny / bad.file, (32, 32))
    c = cfg(tmp_path, **{"augment.hflip": False})
    res = train(tiny, tmp_path / "run", c)
    assert res.skipped_images == 1 and len(res.history) == 2
    problems = [
        json.loads(x) for x in (tmp_path / "run" / "problems.jsonl").read_text().splitlines()
    ]
    assert [p["id"] for p in problems] == ["a_000"] and problems[0]["kind"] in (
        "truncated",
        "corrupt",
    )
    assert sum(r["skipped"] for r in res.history) + res.history[0]["train.images"] >= 17


def test_unknown_config_key_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'optimizer.lrr'; did you mean 'lr'"):
        load_config(TrainConfig, overrides=["optimizer.lrr=0.1"])
    with pytest.raises(ConfigError, match="early_stoping"):
        load_config(TrainConfig, overrides=["early_stoping.patience=2"])


def test_resume_with_other_classes_is_a_clear_error(tmp_path: Path, tiny: Path) -> None:
    train(tiny, tmp_path / "run", cfg(tmp_path, epochs=1))
    other = make_dataset(tmp_path / "other", classes=2, per_class=6)
    with pytest.raises(CheckpointError, match=r"2 \['a', 'b'\]"):
        train(other, tmp_path / "run", cfg(tmp_path, epochs=2), resume=True)
    card = tmp_path / "run" / "model_card.json"
    data = json.loads(card.read_text())
    data["task"] = "count"
    card.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="task 'classify', not 'count'"):
        load_model(tmp_path / "run")


def test_lr_schedules() -> None:
    step = LrSchedule(
        SchedulerConfig(name="step", milestones=[2, 3], gamma=0.1),
        steps_per_epoch=10,
        epochs=4,
        base_lr=1.0,
    )
    assert [step(t) for t in (0, 19, 20, 30)] == pytest.approx([1, 1, 0.1, 0.01])
    cos = LrSchedule(
        SchedulerConfig(name="cosine", warmup_epochs=1, warmup_start=0.1),
        steps_per_epoch=10,
        epochs=3,
        base_lr=1.0,
    )
    assert (
        cos(0) == pytest.approx(0.1)
        and cos(10) == pytest.approx(1.0)
        and cos(30) == pytest.approx(0.0)
    )
    assert cos(20) == pytest.approx(0.5)


def test_cli_train_and_resume(tmp_path: Path, tiny: Path, capsys) -> None:
    run = tmp_path / "run"
    common = [
        "--set",
        "input_size=32",
        "--set",
        "workers=0",
        "--set",
        f"feature_cache_dir={tmp_path / 'f'}",
    ]
    rc = main(
        [
            "train",
            str(tiny),
            "--model",
            "base_cnn",
            "--weights",
            "none",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--optimizer",
            "adamw",
            "--device",
            "cpu",
            "--out",
            str(run),
            *common,
        ]
    )
    assert rc == 0
    assert "run written to" in capsys.readouterr().out
    assert yaml.safe_load((run / "config.yaml").read_text())["optimizer"]["name"] == "adamw"
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]
    rc = main(["train", str(tiny), "--out", str(tmp_path / "bad"), "--set", "optimizer.lrr=1"])
    assert rc == 2 and "did you mean 'lr'" in capsys.readouterr().err
