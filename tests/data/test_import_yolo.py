"""The ``yolo`` importer: Ultralytics layouts, data.yaml, classes.txt and broken labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import write_image, write_truncated_jpeg

from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.data.importers.yolo import label_path
from cvpipe.errors import ConfigError, DatasetFormatError


def problems(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "import_report.json").read_text())["problems"]


def write_split_layout(root: Path) -> None:
    write_image(root / "images" / "train" / "a.jpg", (64, 48))
    write_image(root / "images" / "train" / "b.jpg", (40, 40))
    write_image(root / "images" / "val" / "c.png", (32, 64), fmt="PNG")
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.25 0.5\n")
    (root / "labels" / "train" / "b.txt").write_text("")  # negative
    (root / "labels" / "val" / "c.txt").write_text("2 0.5 0.5 1 1\n")


def test_split_layout_with_data_yaml_dict_names(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_split_layout(root)
    (root / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames:\n  0: burger\n  1: fries\n  2: drink\n"
    )
    out = tmp_path / "ds"
    ds = import_dataset("yolo", root, out)
    assert ds.classes == ["burger", "fries", "drink"]
    recs = {r.id: r for r in ds}
    assert {i: r.split for i, r in recs.items()} == {
        "images/train/a": "train",
        "images/train/b": "train",
        "images/val/c": "val",
    }
    a = recs["images/train/a"]
    assert a.boxes == [[16.0, 12.0, 48.0, 36.0], [8.0, 0.0, 24.0, 24.0]]
    assert a.labels == [0, 1]
    assert recs["images/train/b"].boxes == []
    assert recs["images/val/c"].boxes == [[0.0, 0.0, 32.0, 64.0]]
    assert problems(out) == []


def test_layout_without_yaml_uses_classes_txt_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_split_layout(root)
    (root / "classes.txt").write_text("burger\nfries\ndrink\n")
    ds = import_dataset("yolo", root, tmp_path / "ds")
    assert ds.classes == ["burger", "fries", "drink"]
    assert ds.splits() == {"train": 2, "val": 1}


def test_names_as_list_yaml_as_source_and_list_files(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_split_layout(root)
    (root / "train.txt").write_text("./images/train/a.jpg\nimages/train/b.jpg\n")
    (root / "custom.yaml").write_text(
        "train: train.txt\nval: images/val\nnames: [burger, fries, drink]\nnc: 3\n"
    )
    ds = import_dataset("yolo", root / "custom.yaml", tmp_path / "ds")
    assert ds.classes == ["burger", "fries", "drink"]
    assert ds.splits() == {"train": 2, "val": 1}


def test_flat_layout_no_names_and_missing_label(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_image(root / "images" / "a.jpg", (50, 50))
    write_image(root / "images" / "b.jpg", (50, 50))
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    out = tmp_path / "ds"
    ds = import_dataset("yolo", root, out)
    assert ds.classes == ["0", "1"]  # named by their ids, reported
    recs = {r.id: r for r in ds}
    assert (
        recs["images/b"].boxes == [] and recs["images/b"].split is None
    )  # YOLO: no file = no objects
    kinds = {p["kind"]: p for p in problems(out)}
    assert set(kinds) == {"no_class_names", "no_label_file"}
    assert kinds["no_label_file"]["action"] == "kept as a negative (no boxes)"


def test_side_by_side_layout(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_image(root / "a.jpg", (20, 10))
    (root / "a.txt").write_text("0 0.5 0.5 1 1\n")
    (root / "classes.txt").write_text("thing\n")
    ds = import_dataset("yolo", root, tmp_path / "ds")
    assert ds.records[0].boxes == [[0.0, 0.0, 20.0, 10.0]]


def test_bad_lines_reported_with_line_numbers(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_image(root / "images" / "a.jpg", (100, 100))
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n"  # 1 ok
        "0 0.5 0.5 0.2\n"  # 2 wrong field count
        "0 0.5 x 0.2 0.2\n"  # 3 not a number
        "5 0.5 0.5 0.2 0.2\n"  # 4 class out of range
        "1 1.5 0.5 0.2 0.2\n"  # 5 outside 0..1
        "\n"  # 6 blank is fine
        "1 0.95 0.5 0.2 0.2\n"  # 7 box crosses the right edge: clipped
        "1 0.5 0.5 0 0.2\n"  # 8 zero width: dropped
    )
    (root / "classes.txt").write_text("a\nb\n")
    out = tmp_path / "ds"
    ds = import_dataset("yolo", root, out)
    (rec,) = ds.records
    assert [v for b in rec.boxes or [] for v in b] == pytest.approx(
        [40, 40, 60, 60, 85, 40, 100, 60]
    )
    got = [(p["kind"], p.get("line")) for p in problems(out)]
    assert got == [
        ("bad_line", 2),
        ("bad_line", 3),
        ("class_out_of_range", 4),
        ("value_out_of_range", 5),
        ("box_outside", None),
        ("box_zero_area", None),
    ]
    assert all(p["file"].endswith("a.txt") for p in problems(out))
    with pytest.raises(DatasetFormatError, match=r"a\.txt:2: expected 5 fields"):
        import_dataset("yolo", root, tmp_path / "ds2", ImportOptions(on_error="fail"))


def test_broken_images_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_truncated_jpeg(root / "images" / "cut.jpg", (64, 48))
    write_image(root / "images" / "fake.jpg", (30, 20), fmt="PNG")
    (root / "images" / "empty.jpg").write_bytes(b"")
    (root / "labels").mkdir(parents=True)
    for n in ("cut", "fake", "empty"):
        (root / "labels" / f"{n}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "classes.txt").write_text("a\n")
    out = tmp_path / "ds"
    ds = import_dataset("yolo", root, out)
    # header-only import: the truncated JPEG imports fine; `cvpipe validate` finds it
    assert sorted(r.id for r in ds) == ["images/cut", "images/fake"]
    assert sorted(p["kind"] for p in problems(out)) == ["extension_mismatch", "image_empty"]


def test_bad_yaml_and_bad_names(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_split_layout(root)
    (root / "data.yaml").write_text("names: [a, b\ntrain: x\n")
    with pytest.raises(DatasetFormatError, match=r"data\.yaml:\d+: invalid YAML"):
        import_dataset("yolo", root, tmp_path / "ds")
    (root / "data.yaml").write_text("names: {0: a, 2: b}\n")
    with pytest.raises(DatasetFormatError, match=r"data\.yaml \[names\]: names: ids \[0, 2\]"):
        import_dataset("yolo", root, tmp_path / "ds")
    (root / "data.yaml").write_text("names: [a, b, c]\nval: nowhere/\n")
    with pytest.raises(DatasetFormatError, match=r"data\.yaml \[val\]"):
        import_dataset("yolo", root, tmp_path / "ds", ImportOptions(on_error="fail"))


def test_classes_filter(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    write_split_layout(root)
    (root / "classes.txt").write_text("burger\nfries\ndrink\n")
    out = tmp_path / "ds"
    ds = import_dataset("yolo", root, out, ImportOptions(classes=["fries", "burger"]))
    assert ds.classes == ["fries", "burger"]
    assert {r.id: r.labels for r in ds}["images/train/a"] == [1, 0]
    assert sorted(p["kind"] for p in problems(out)) == ["class_not_selected"]
    with pytest.raises(ConfigError, match="valid: burger, fries, drink"):
        import_dataset("yolo", root, tmp_path / "ds2", ImportOptions(classes=["pizza"]))


def test_label_path_rule() -> None:
    assert label_path(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")
    assert label_path(Path("/images/d/images/x/a.b.png")) == Path("/images/d/labels/x/a.b.txt")
    assert label_path(Path("/d/a.jpg")) == Path("/d/a.txt")
