"""Checkpoints: atomic saves, weights_only loads, clear mismatch errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cvpipe.engine.checkpoint import (
    check_compatible,
    ckpt_meta,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)
from cvpipe.errors import CheckpointError


def test_round_trip_weights_only(tmp_path: Path) -> None:
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters())
    m(torch.ones(1, 3)).sum().backward()
    opt.step()
    path = tmp_path / "ck" / "last.pt"
    save_checkpoint(
        path,
        {"model": m.state_dict(), "optimizer": opt.state_dict(), "epoch": 3},
        {"task": "count", "classes": ["1", "2"]},
    )
    raw = torch.load(path, weights_only=True, map_location="cpu")
    assert isinstance(raw["meta"], str)
    ck = load_checkpoint(path)
    assert ck["epoch"] == 3 and ckpt_meta(ck) == {"task": "count", "classes": ["1", "2"]}
    m2 = torch.nn.Linear(3, 2)
    load_state_strict(m2, ck["model"], path)
    assert torch.equal(m2.weight, m.weight)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_state_strict(torch.nn.Linear(4, 2), ck["model"], path)


def test_failed_save_keeps_previous_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {}, "epoch": 1}, {"task": "classify"})
    before = path.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"model": {}, "epoch": 2}, {"task": "classify"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not a cvpipe checkpoint"):
        load_checkpoint(other)


def test_compatibility_messages() -> None:
    meta = {"task": "classify", "classes": ["a", "b"], "model": "resnet18"}
    check_compatible(meta, path="x.pt", task="classify", classes=["a", "b"], model="resnet18")
    with pytest.raises(CheckpointError, match="task 'classify', not 'count'"):
        check_compatible(meta, path="x.pt", task="count")
    with pytest.raises(CheckpointError, match=r"has 2 classes .* the dataset has 3"):
        check_compatible(meta, path="x.pt", classes=["a", "b", "c"])
    with pytest.raises(CheckpointError, match="'resnet18' model, not 'resnet50'"):
        check_compatible(meta, path="x.pt", model="resnet50")
