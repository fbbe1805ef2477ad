"""Fixtures for model tests: an isolated weights world (store, torch and HF caches in tmp)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point CVPIPE_HOME, TORCH_HOME and the Hugging Face cache at empty temp folders."""
    for var in ("HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CVPIPE_HOME", str(tmp_path / "cvpipe"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path
