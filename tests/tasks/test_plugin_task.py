"""A fourth task plugs in by registering one module (tests/tasks/has_object.py) and
trains, evaluates and predicts through cvpipe's shared code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tests.engine.tinydetect import make_detect_dataset  # noqa: E402
from tests.tasks import has_object  # noqa: E402, F401  (registers the task)

from cvpipe.cli.main import main  # noqa: E402
from cvpipe.data.manifest import Dataset  # noqa: E402
from cvpipe.engine.config import TrainConfig  # noqa: E402
from cvpipe.engine.trainer import train  # noqa: E402


def has_object_dataset(root: Path) -> Dataset:
    """The tiny detection set (a quarter of its images without boxes) as a has_object set."""
    det = make_detect_dataset(root, splits={"train": 12, "val": 6, "test": 6}, empty_every=2)
    info = det.info.model_copy(update={"task": "has_object"})
    Dataset(root, info, det.records).save()
    return Dataset.load(root)


def test_has_object_trains_evaluates_and_predicts(tmp_path: Path, capsys) -> None:
    ds = has_object_dataset(tmp_path / "ds")
    assert ds.task == "has_object" and ds.output_classes == ["empty", "object"]
    assert sorted(set(ds.class_index(r) for r in ds.records)) == [0, 1]
    cfg = TrainConfig(
        model="base_cnn", weights="none", epochs=2, batch_size=4, input_size=32, workers=0,
        device="cpu",
    )  # fmt: skip
    result = train(ds.root, tmp_path / "run", cfg)
    assert len(result.history) == 2 and "val.accuracy" in result.best
    card = json.loads((tmp_path / "run" / "model_card.json").read_text())
    assert card["task"] == "has_object" and card["classes"] == ["empty", "object"]

    assert main(["eval", str(tmp_path / "run"), "--split", "test", "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"] <= 1.0
    capsys.readouterr()

    assert main(["predict", str(tmp_path / "run"), str(ds.root / "images")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(ds) and {r["class"] for r in rows} <= {"empty", "object"}
