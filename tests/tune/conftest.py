"""Fixtures for the tuning tests: a tiny separable dataset and tiny head-only trials."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tinydata import make_dataset  # noqa: E402
from tunedata import base_train  # noqa: E402

from cvpipe.config import load_config  # noqa: E402
from cvpipe.tune.config import TuneConfig  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """The shared test machine has 2 cores: one intra-op thread is faster for tiny nets."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 8 JPEGs of 32 px, all in train (the trainer carves a seeded val)."""
    return make_dataset(tmp_path_factory.mktemp("tune-ds") / "ds", classes=3, per_class=8)


@pytest.fixture
def make_tune(tmp_path: Path, tiny_ds: Path):
    """Factory: a TuneConfig over ``tiny_ds`` writing into ``tmp_path/out``."""

    def make(**kw: Any) -> TuneConfig:
        values: dict[str, Any] = {
            "dataset": str(tiny_ds),
            "train": base_train(tmp_path, **kw.pop("train", {})),
            "space": {
                "optimizer.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
                "batch_size": [4, 8, 16],
            },
            "max_trials": 3,
            "strategy": "random",
            "out": str(tmp_path / "out"),
            "heartbeat_s": 2,
            "report": False,
        }
        values.update(kw)
        return load_config(TuneConfig, values=values)

    return make
