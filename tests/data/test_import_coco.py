"""The ``coco`` importer: instances JSON, clean and broken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import write_image, write_truncated_jpeg

from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.errors import ConfigError, DatasetError, DatasetFormatError


def coco_doc() -> dict[str, Any]:
    """Three images (one negative), non-contiguous category ids, one crowd box."""
    return {
        "images": [
            {"id": 10, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 11, "file_name": "sub/b.png", "width": 40, "height": 32},
            {"id": 12, "file_name": "c.jpg", "width": 32, "height": 32},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 10,
                "category_id": 7,
                "bbox": [1, 2, 10, 20],
                "iscrowd": 0,
                "segmentation": [[1, 2, 3, 4, 5, 6]],
                "area": 200,
            },
            {
                "id": 2,
                "image_id": 10,
                "category_id": 3,
                "bbox": [5.5, 6.25, 10, 10],
                "iscrowd": 1,
                "area": 100,
            },
            {"id": 3, "image_id": 11, "category_id": 7, "bbox": [0, 0, 40, 32], "iscrowd": 0},
        ],
        "categories": [
            {"id": 7, "name": "fries"},
            {"id": 3, "name": "burger"},
            {"id": 20, "name": "drink"},
        ],
    }


def write_coco(root: Path, doc: dict[str, Any] | None = None, name: str = "instances.json") -> Path:
    write_image(root / "a.jpg", (64, 48))
    write_image(root / "sub" / "b.png", (40, 32), fmt="PNG")
    write_image(root / "c.jpg", (32, 32))
    path = root / name
    path.write_text(json.dumps(doc or coco_doc()))
    return path


def problems(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "import_report.json").read_text())["problems"]


def test_import_boxes_classes_and_flags(tmp_path: Path) -> None:
    ann = write_coco(tmp_path / "coco")
    ds = import_dataset("coco", ann, tmp_path / "ds")
    # classes ordered by category id (3, 7, 20), mapped to contiguous indices
    assert ds.classes == ["burger", "fries", "drink"]
    recs = {r.id: r for r in ds}
    assert list(recs) == ["a", "sub/b", "c"]
    a = recs["a"]
    assert a.boxes == [[1.0, 2.0, 11.0, 22.0], [5.5, 6.25, 15.5, 16.25]]
    assert a.labels == [1, 0]
    assert a.meta["box_meta"] == [{"iscrowd": 0}, {"iscrowd": 1}]
    assert a.meta["coco_id"] == 10
    assert recs["sub/b"].file == "sub/b.png"
    assert recs["c"].boxes == [] and recs["c"].split is None  # negative kept
    assert problems(tmp_path / "ds") == []


def test_images_sibling_folder_and_images_option(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_coco(root / "images")
    ann_dir = root / "annotations"
    ann_dir.mkdir()
    (root / "images" / "instances.json").rename(ann_dir / "instances.json")
    ds = import_dataset(
        "coco", ann_dir / "instances.json", tmp_path / "ds"
    )  # annotations/../images
    assert len(ds) == 3 and ds.image_root.resolve() == (root / "images").resolve()
    ds = import_dataset(
        "coco",
        ann_dir / "instances.json",
        tmp_path / "ds2",
        ImportOptions(images=str(root / "images")),
    )
    assert len(ds) == 3


def test_folder_of_split_files(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    doc = coco_doc()
    train = dict(doc, images=doc["images"][:2], annotations=doc["annotations"])
    val = dict(doc, images=doc["images"][2:], annotations=[])
    write_coco(root, train, "instances_train2017.json")
    (root / "instances_val2017.json").write_text(json.dumps(val))
    ds = import_dataset("coco", root, tmp_path / "ds")
    assert {r.id: r.split for r in ds} == {"a": "train", "sub/b": "train", "c": "val"}


def test_unknown_ids_missing_fields_and_bad_bbox(tmp_path: Path) -> None:
    doc = coco_doc()
    doc["annotations"] += [
        {"id": 4, "image_id": 99, "category_id": 7, "bbox": [1, 1, 2, 2]},
        {"id": 5, "image_id": 10, "category_id": 42, "bbox": [1, 1, 2, 2]},
        {"id": 6, "image_id": 10, "category_id": 7},
        {"id": 7, "image_id": 10, "category_id": 7, "bbox": [1, "x", 2, 2]},
    ]
    doc["images"].append({"id": 13})
    ann = write_coco(tmp_path / "coco", doc)
    out = tmp_path / "ds"
    ds = import_dataset("coco", ann, out)
    assert len(ds) == 3 and len(ds.records[0].boxes or []) == 2
    got = {(p["kind"], p.get("field")) for p in problems(out)}
    assert got == {
        ("missing_field", "images[3].file_name"),
        ("unknown_image_id", "annotations[3].image_id"),
        ("unknown_category_id", "annotations[4].category_id"),
        ("missing_field", "annotations[5].bbox"),
        ("bad_value", "annotations[6].bbox"),
    }
    with pytest.raises(DatasetFormatError, match=r"instances\.json \[images\[3\]\.file_name\]"):
        import_dataset("coco", ann, tmp_path / "ds2", ImportOptions(on_error="fail"))


def test_malformed_json_and_missing_top_level_key(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_coco(root)
    bad = root / "broken.json"
    bad.write_text('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(DatasetError, match=r"no usable images.*broken\.json: invalid JSON"):
        import_dataset("coco", bad, tmp_path / "ds")
    with pytest.raises(DatasetFormatError, match=r"broken\.json:2: invalid JSON"):
        import_dataset("coco", bad, tmp_path / "ds", ImportOptions(on_error="fail"))
    nocat = root / "nocat.json"
    nocat.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(
        DatasetFormatError, match=r"nocat\.json \[categories\]: 'categories' is missing"
    ):
        import_dataset("coco", nocat, tmp_path / "ds", ImportOptions(on_error="fail"))


def test_box_outside_zero_area_missing_and_bad_images(tmp_path: Path) -> None:
    doc = coco_doc()
    doc["images"] += [
        {"id": 20, "file_name": "gone.jpg", "width": 10, "height": 10},
        {"id": 21, "file_name": "cut.jpg", "width": 64, "height": 48},
        {"id": 22, "file_name": "fake.jpg", "width": 30, "height": 20},
    ]
    doc["annotations"] += [
        {"id": 8, "image_id": 12, "category_id": 3, "bbox": [20, 20, 30, 30]},  # outside 32x32
        {"id": 9, "image_id": 12, "category_id": 3, "bbox": [5, 5, 0, 10]},  # zero width
    ]
    ann = write_coco(tmp_path / "coco", doc)
    write_truncated_jpeg(tmp_path / "coco" / "cut.jpg", (64, 48))
    write_image(tmp_path / "coco" / "fake.jpg", (30, 20), fmt="PNG")
    out = tmp_path / "ds"
    ds = import_dataset("coco", ann, out)
    recs = {r.id: r for r in ds}
    assert recs["c"].boxes == [[20.0, 20.0, 32.0, 32.0]]
    assert recs["c"].meta["box_meta"] == [{"iscrowd": 0}]
    # header-only import: the truncated JPEG imports; `cvpipe validate` finds it
    assert "cut" in recs and "gone" not in recs and "fake" in recs
    assert sorted(p["kind"] for p in problems(out)) == [
        "box_outside",
        "box_zero_area",
        "extension_mismatch",
        "image_missing",
    ]


def test_size_mismatch_uses_real_size(tmp_path: Path) -> None:
    doc = coco_doc()
    doc["images"][2]["width"] = 0
    ann = write_coco(tmp_path / "coco", doc)
    out = tmp_path / "ds"
    ds = import_dataset("coco", ann, out)
    assert (ds.records[2].width, ds.records[2].height) == (32, 32)
    (p,) = problems(out)
    assert p["kind"] == "size_mismatch" and p["action"] == "used real size 32x32"


def test_classes_filter(tmp_path: Path) -> None:
    ann = write_coco(tmp_path / "coco")
    out = tmp_path / "ds"
    ds = import_dataset("coco", ann, out, ImportOptions(classes=["burger"]))
    assert ds.classes == ["burger"]
    assert ds.records[0].boxes == [[5.5, 6.25, 15.5, 16.25]] and ds.records[0].meta["box_meta"] == [
        {"iscrowd": 1}
    ]
    (p,) = problems(out)
    assert p["kind"] == "class_not_selected" and "2 annotations of class 'fries'" in p["message"]
    with pytest.raises(ConfigError, match="valid: burger, fries, drink"):
        import_dataset("coco", ann, tmp_path / "ds2", ImportOptions(classes=["pizza"]))


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no COCO .json files"):
        import_dataset("coco", tmp_path / "empty", tmp_path / "ds")
