"""The Python API mirrors the verbs: one pipeline through cvpipe.* on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

import cvpipe

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 230)]


def _folder(root: Path, per_class: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green", "blue"]):
        for i in range(per_class):
            arr = np.clip(np.array(COLOURS[c], float) + rng.normal(0, 20, (32, 32, 3)), 0, 255)
            path = root / name / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr.astype(np.uint8)).save(path)
    return root


def test_pipeline_through_the_python_api(tmp_path: Path) -> None:
    src = _folder(tmp_path / "photos")
    ds = cvpipe.import_dataset("imagefolder", src, out=tmp_path / "ds")
    assert ds.classes == ["blue", "green", "red"] and len(ds) == 30

    report = cvpipe.validate(tmp_path / "ds")
    assert (tmp_path / "ds" / "validation.json").is_file()
    assert not [p for p in report.problems if p.severity == "error"]

    cvpipe.split(tmp_path / "ds", ratios="60/20/20", seed=0)
    splits = cvpipe.load_dataset(tmp_path / "ds").splits()
    assert splits == {"train": 18, "val": 6, "test": 6}

    result = cvpipe.train(
        tmp_path / "ds",
        tmp_path / "run",
        model="base_cnn",
        weights="none",
        input_size=32,
        epochs=2,
        batch_size=8,
        workers=0,
        overrides=["optimizer.lr=0.01"],
    )
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert result is not None

    cvpipe.evaluate(tmp_path / "run", split="test")
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 6 and 0.0 <= metrics["accuracy"] <= 1.0
