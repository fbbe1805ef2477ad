from __future__ import annotations

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
