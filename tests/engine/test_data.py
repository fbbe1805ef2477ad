from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.engine.data import _suggest_pack


def _dataset(tmp_path: Path, side: int, n: int = 5) -> Dataset:
    recs = [
        Record(
            id=f"r{i}", file=f"{i}.jpg", width=side * 4 // 3, height=side, split="train", label=0
        )
        for i in range(n)
    ]
    return Dataset(tmp_path, DatasetInfo(name="d", task="classify", classes=["a"]), recs)


@pytest.mark.parametrize(
    ("side", "epochs", "hinted"),
    [(2000, 10, True), (2000, 2, False), (600, 10, False)],
    ids=["large-photos", "too-few-epochs", "small-images"],
)
def test_pack_is_suggested_only_for_large_photos_over_several_epochs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, side: int, epochs: int, hinted: bool
) -> None:
    ds = _dataset(tmp_path, side)
    with caplog.at_level(logging.INFO, logger="cvpipe.engine.data"):
        _suggest_pack(ds, ds.records, draft=448, epochs=epochs)
    text = caplog.text
    assert ("cvpipe pack" in text) is hinted
    if hinted:
        assert "--size 448" in text and str(tmp_path) in text and "median shorter side 2000" in text


@pytest.mark.parametrize(
    ("n", "batch", "sizes"),
    [(18, 17, [17]), (19, 17, [17, 2]), (34, 17, [17, 17]), (3, 1, [1, 1, 1]), (1, 4, [])],
)
def test_train_batches_leave_out_a_last_single_sample(n: int, batch: int, sizes: list[int]) -> None:
    from cvpipe.engine.data import TrainBatches

    batches = TrainBatches(list(range(n)), batch)
    got = list(batches)
    assert [len(b) for b in got] == sizes and len(batches) == len(sizes)
    assert sorted(i for b in got for i in b) == list(range(sum(sizes)))


def test_training_survives_a_last_batch_of_one_with_batchnorm(tmp_path: Path) -> None:
    """18 train images, batch 17: ResNet-18 at 32 px has 1x1 maps where one sample cannot
    be batch-normalised."""
    import sys

    import torch

    from cvpipe.config import load_config
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.runs import read_metrics
    from cvpipe.engine.trainer import train

    sys.path.insert(0, str(Path(__file__).parent))
    from tinydata import make_dataset

    ds = make_dataset(tmp_path / "ds", classes=3, per_class=8)
    cfg = load_config(TrainConfig, values={
        "model": "resnet18", "weights": "none", "input_size": 32, "epochs": 1, "batch_size": 17,
        "workers": 0, "health": {"enabled": False}, "feature_cache_dir": str(tmp_path / "f"),
    })  # fmt: skip
    torch.manual_seed(0)
    train(ds, tmp_path / "run", cfg)
    lock = json.loads((tmp_path / "run" / "dataset.lock").read_text())
    assert len(lock["splits"]["train"]) == 18
    row = read_metrics(tmp_path / "run")[0]
    assert row["train.images"] == 17 and row["steps"] == 1  # the 18th comes back next epoch
