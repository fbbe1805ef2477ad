"""cvpipe pack: pre-resized shards, reading them back, broken images, the verb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cvpipe.cli.main import main
from cvpipe.data.datasets import ImageDataset
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.data.pack import INDEX, PackConfig, PackReader, pack_dataset
from cvpipe.errors import DatasetError
from cvpipe.io import read_json
from cvpipe.models.preprocess import Preprocess


def _dataset(root: Path, make_image, sizes) -> Path:
    recs = []
    for i, size in enumerate(sizes):
        make_image(root / "img" / f"{i}.png", size, seed=i)
        recs.append(
            Record(
                id=f"r{i}",
                file=f"img/{i}.png",
                width=size[0],
                height=size[1],
                split="train",
                label=i % 2,
            )
        )
    Dataset(root, DatasetInfo(name="p", task="classify", classes=["a", "b"]), recs).save()
    return root


def test_pack_round_trip(tmp_path: Path, make_image, make_truncated_jpeg) -> None:
    root = _dataset(tmp_path / "ds", make_image, [(80, 40), (30, 60), (64, 64), (50, 50)])
    ds = Dataset.load(root)
    ds.records[3].file = "img/bad.jpg"
    make_truncated_jpeg(root / "img" / "bad.jpg")
    ds.save()
    res = pack_dataset(root, tmp_path / "pack", PackConfig(size=32, shard_mb=1))
    assert res.images == 3 and [p["id"] for p in res.problems] == ["r3"]
    index = read_json(tmp_path / "pack" / INDEX)
    assert index["manifest_sha256"] == Dataset.load(root).manifest_hash() and index["size"] == 32
    reader = PackReader.open(tmp_path / "pack")
    ds = Dataset.load(root)
    a0 = reader.get(ds.records[0])
    assert a0.shape == (32, 64, 3) and a0.dtype == np.uint8  # shorter side 40 → 32
    assert reader.get(ds.records[1]).shape == (60, 30, 3)  # never upscaled
    assert reader.get(ds.records[3]) is None and reader.coverage(ds.records) == 0.75
    # a dataset reading from the pack gives the same tensors as resizing the decoded file
    pre = Preprocess(input_size=32, resize_size=32)
    packed = ImageDataset(ds, ds.records, pre.eval_transform(), pack=reader)
    plain = ImageDataset(ds, ds.records, pre.eval_transform())
    assert torch.allclose(packed[2][0], plain[2][0])
    assert torch.allclose(packed[0][0], plain[0][0], atol=0.15)  # resized twice vs once
    assert packed[3].kind in ("truncated", "corrupt")  # not packed: decoded and reported


def test_pack_errors_and_cli(tmp_path: Path, make_image, capsys) -> None:
    with pytest.raises(DatasetError, match="is .* a pack"):
        PackReader.open(tmp_path)
    root = _dataset(tmp_path / "ds", make_image, [(40, 40), (40, 40)])
    assert main(["pack", str(root), "--size", "16", "--out", str(tmp_path / "pk")]) == 0
    assert "pack written to" in capsys.readouterr().out
    assert len(PackReader.open(tmp_path / "pk").records) == 2
    assert main(["pack", str(root), "--out", str(tmp_path / "pk2"), "--set", "sise=3"]) == 2
    assert "did you mean 'size'" in capsys.readouterr().err
