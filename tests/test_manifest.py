from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.errors import DatasetError, DatasetFormatError


def _ds(root: Path, task: str = "detect") -> Dataset:
    info = DatasetInfo(name="t", task=task, classes=["a", "b"])  # type: ignore[arg-type]
    recs = [
        Record(
            "x",
            "x.jpg",
            10,
            8,
            "train",
            boxes=[[0, 0, 5, 5]],
            labels=[1],
            meta={"box_meta": [{"difficult": 0}]},
        ),
        Record("y", "y.jpg", 10, 8, None, boxes=[], labels=[]),
    ]
    return Dataset(root, info, recs)


def test_save_load_round_trip(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.save()
    again = Dataset.load(tmp_path / "d")
    assert [r.to_json() for r in again] == [r.to_json() for r in ds]
    assert again.class_counts() == [0, 1]
    assert again.manifest_hash() == ds.manifest_hash()
    assert not list((tmp_path / "d").glob("*.tmp"))


def test_manifest_hash_changes_with_split(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    h = ds.manifest_hash()
    ds.records[1].split = "val"
    assert ds.manifest_hash() != h


def test_count_task_class_index(tmp_path: Path) -> None:
    info = DatasetInfo(name="c", task="count", classes=["1", "2", "3"])
    ds = Dataset(tmp_path, info, [Record("a", "a.jpg", 4, 4, count=3)])
    assert ds.class_index(ds.records[0]) == 2


def test_missing_dataset_messages(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset directory not found"):
        Dataset.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cvpipe import"):
        Dataset.load(tmp_path / "empty")


def test_bad_manifest_line_is_located(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    ds.save()
    with open(tmp_path / "manifest.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(DatasetFormatError, match=r"manifest\.jsonl:3: invalid JSON"):
        Dataset.load(tmp_path)


def test_label_out_of_range_is_located(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    ds.records[0].labels = [7]
    ds.save()
    with pytest.raises(DatasetFormatError, match=r"manifest\.jsonl:1 \[labels\]: labels \[7\]"):
        Dataset.load(tmp_path)


def test_duplicate_class_names_rejected(tmp_path: Path) -> None:
    (tmp_path / "dataset.yaml").write_text("name: x\ntask: classify\nclasses: [a, a]\n")
    (tmp_path / "manifest.jsonl").write_text("")
    with pytest.raises(DatasetFormatError, match="duplicate class names"):
        Dataset.load(tmp_path)


def test_rebased_info_points_to_same_images(tmp_path: Path) -> None:
    info = DatasetInfo(name="t", task="classify", classes=["a"], image_root="../raw")
    ds = Dataset(tmp_path / "ds", info, [Record("a", "a.jpg", 2, 2, label=0)])
    moved = ds.rebased_info(tmp_path / "elsewhere" / "deeper")
    new = Dataset(tmp_path / "elsewhere" / "deeper", moved, ds.records)
    assert new.image_path(new.records[0]).resolve() == ds.image_path(ds.records[0]).resolve()


def test_record_json_is_compact_and_rounded() -> None:
    r = Record("a", "a.jpg", 3, 3, boxes=[[0.12345, 1, 2, 3]], labels=[0])
    obj = r.to_json()
    assert obj["boxes"] == [[0.123, 1.0, 2.0, 3.0]]
    assert "label" not in obj and "meta" not in obj
    assert json.loads(json.dumps(obj))["split"] is None
