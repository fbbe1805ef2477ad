"""DDP: two CPU processes (gloo) match a single process."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tinydata import make_dataset  # noqa: E402

from cvpipe.config import load_config  # noqa: E402
from cvpipe.data.datasets import EpochSampler  # noqa: E402
from cvpipe.engine import distributed as D  # noqa: E402
from cvpipe.engine.config import TrainConfig  # noqa: E402
from cvpipe.engine.launch import train_distributed  # noqa: E402
from cvpipe.engine.trainer import train  # noqa: E402
from cvpipe.errors import ConfigError  # noqa: E402


def test_sampler_shards_cover_the_epoch_once() -> None:
    full = [i for i, _ in EpochSampler(10, seed=3)]
    shards = [EpochSampler(10, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    got = [[i for i, _ in s] for s in shards]
    assert sorted(got[0] + got[1]) == sorted(full)
    # per-step union of the two ranks equals the single-process global batch
    assert sorted(got[0][:2] + got[1][:2]) == sorted(full[:4])
    seeds0 = [s for _, s in EpochSampler(10, seed=3)]
    assert [s for _, s in shards[1]] == seeds0[1::2]


def test_reductions_without_a_group() -> None:
    assert D.all_reduce_sum([1.0, 2.0]) == [1.0, 2.0]
    assert D.any_rank(True) and not D.any_rank(False)
    assert D.env_context().world_size == 1
    assert 0 < D.free_port() < 65536


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_processes_match_one(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class=8, splits={"train": 6, "val": 2})
    values = {
        "model": "base_cnn", "weights": "none", "input_size": 32, "epochs": 2, "batch_size": 4, "workers": 0,
        "freeze": "frozen", "feature_cache": "off", "augment": {"hflip": True}, "optimizer": {"lr": 0.01},
        "head": {"hidden": [16], "dropout": 0.0},  # dropout masks differ by process layout
    }  # fmt: skip
    config = load_config(TrainConfig, values=values)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(ds, tmp_path / "one", config)
    finally:
        torch.set_num_threads(old)
    multi = train_distributed(ds, tmp_path / "two", config, nproc=2)
    assert len(multi.history) == 2
    for a, b in zip(single.history, multi.history, strict=True):
        for key in ("train.loss", "train.accuracy", "val.loss", "val.accuracy"):
            assert b[key] == pytest.approx(a[key], abs=1e-4), key
        assert b["train.images"] == a["train.images"] == 12 and b["val.images"] == 4
    assert (tmp_path / "two" / "checkpoints" / "best.pt").is_file()
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(x)["kind"] == "epoch" for x in lines) == 2  # rank 0 alone wrote


def test_bad_nproc(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--nproc"):
        train_distributed(tmp_path, tmp_path / "r", TrainConfig(), nproc=0)
