"""cvpipe audit on a detection set with a detector run: disputed boxes are listed and drawn."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from tinydetect import make_detect_dataset, make_detect_run  # noqa: E402

from cvpipe.audit.config import AuditConfig  # noqa: E402
from cvpipe.audit.scan import audit  # noqa: E402
from cvpipe.config import load_config  # noqa: E402
from cvpipe.errors import CheckpointError  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_detector_run_disputes_boxes_it_does_not_support(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds")
    run = make_detect_run(tmp_path / "run", ds)  # random weights: never 0.99 sure of a box
    cfg = load_config(
        AuditConfig,
        values={"model": "base_cnn", "weights": "none", "input_size": 32, "device": "cpu",
                "duplicates.input_size": 32, "duplicates.threshold": 1.0,
                "feature_cache_dir": str(tmp_path / "f"), "detection.support": 0.99},
    )  # fmt: skip
    res = audit(ds.root, cfg, run=run)
    n_boxes = sum(len(r.boxes or []) for r in ds.records)
    spurious = [b for b in res.boxes if b.kind == "spurious"]
    assert n_boxes > 0 and len(spurious) == n_boxes  # every labelled box is unsupported
    assert res.label_issues == [] and res.shortcut is None  # classify-only findings
    data = json.loads((ds.root / "audit" / "audit.json").read_text())
    assert data["summary"]["box_disagreements"] == len(res.boxes)
    first = data["detector_disagreements"][0]
    assert {"id", "file", "kind", "box", "label", "score", "trained_on"} <= set(first)
    html = (ds.root / "audit" / "report.html").read_text()
    assert "Boxes the detector disagrees with" in html and "spurious" in html
    # a detector for other classes is refused
    card = json.loads((run / "model_card.json").read_text())
    card["classes"] = ["x", "y"]
    (run / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="classes"):
        audit(ds.root, cfg, run=run)
