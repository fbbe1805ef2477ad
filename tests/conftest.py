"""Shared fixtures: every test makes its own tiny data in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IN_CI = os.environ.get("CI", "").lower() == "true"


def write_image(
    path: Path,
    size: tuple[int, int] = (48, 32),
    fmt: str | None = None,
    mode: str = "RGB",
    seed: int = 0,
) -> Path:
    """Write a small random image of ``size`` (w, h); ``fmt`` overrides the extension's format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    im.save(path, format=fmt)
    return path


def write_truncated_jpeg(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    write_image(path, size, fmt="JPEG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def make_image():
    return write_image


@pytest.fixture
def make_truncated_jpeg():
    return write_truncated_jpeg


def skip_or_fail(reason: str) -> None:
    """Skip outside CI; in CI (CI=true) a missing service is a failure."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the internet: weights downloads are off unless a test serves
    them from 127.0.0.1 (tests/weightserver.py) and turns them back on."""
    monkeypatch.setenv("CVPIPE_OFFLINE", "1")
    monkeypatch.delenv("CVPIPE_WEIGHTS_URL", raising=False)


from tests.weightserver import weight_server  # noqa: E402,F401  (fixture: a loopback weights server)
