"""Serve fixtures: a tiny fabricated run, JPEG bytes, a fake detector, a live server."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tests.evaluation.test_evaluate import make_dataset, make_run

from cvpipe.engine.runs import ModelCard
from cvpipe.models.preprocess import Preprocess
from cvpipe.serve.runtime import Runtime, TorchRuntime


def image_bytes(size: tuple[int, int] = (48, 36), fmt: str = "JPEG", color=(200, 30, 30)) -> bytes:
    rng = np.random.default_rng(0)
    arr = np.clip(np.array(color) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(
        np.uint8
    )
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classify run (base_cnn, 32 px, 3 classes) without model.onnx."""
    root = tmp_path_factory.mktemp("served")
    ds = make_dataset(root / "ds")
    return make_run(root / "run", ds)


@pytest.fixture(scope="session")
def count_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("count")
    ds = make_dataset(root / "ds", classes=("1", "2", "3"), task="count")
    return make_run(root / "run", ds)


class FakeDetectPredictor:
    """Stands in for the detection predictor: two fixed boxes per image, scaled to it."""

    def __init__(self) -> None:
        self.card = ModelCard(
            task="detect",
            classes=["burger", "fries"],
            model="fake_ssd",
            head={},
            preprocess=Preprocess(input_size=64, resize_size=64),
            input_size=64,
        )
        self.seen: list[tuple[int, int]] = []

    def predict_images(self, images: list[Image.Image]) -> list[dict[str, Any]]:
        out = []
        for im in images:
            w, h = im.size
            self.seen.append((w, h))
            out.append(
                {
                    "boxes": np.array(
                        [
                            [0.1 * w, 0.2 * h, 0.6 * w, 0.9 * h],
                            [0.5 * w, 0.1 * h, 0.9 * w, 0.5 * h],
                            [0, 0, 2 * w, h],
                        ]
                    ),
                    "scores": np.array([0.9, 0.3, 0.02]),
                    "labels": np.array([0, 1, 1]),
                }
            )
        return out


@pytest.fixture
def detect_runtime() -> Runtime:
    return TorchRuntime(FakeDetectPredictor())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn in a thread on 127.0.0.1 (stopped by the fixture)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_server() -> Iterator[Any]:
    """Factory: ``with live_server(app) as srv: srv.url``."""
    yield LiveServer
