"""Tiny tuning inputs shared by the tune tests (imported through sys.path, like tinydata)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvpipe.engine.config import TrainConfig


def base_train(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    """A base train config for tiny head-only trials on a frozen random backbone."""
    base: dict[str, Any] = {
        "model": "base_cnn", "weights": "none", "freeze": "frozen", "input_size": 32,
        "epochs": 2, "batch_size": 8, "workers": 0, "feature_cache_dir": str(tmp_path / "features"),
    }  # fmt: skip
    if "health" in TrainConfig.model_fields:  # no health report for smoke runs
        base["health"] = {"enabled": False}
    base.update(kw)
    return base
