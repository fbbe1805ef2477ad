from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from cvpipe.cli.main import main
from cvpipe.data import boxes as B
from cvpipe.data.demo import FOOD, generate
from cvpipe.data.manifest import Dataset
from cvpipe.errors import ConfigError, DatasetError

SMALL = {"size": 48, "per_class": 3, "detect_images": 8}


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "data"
    generate(out, seed=0, **SMALL)
    return out


def test_deterministic_byte_identical(demo: Path, tmp_path: Path) -> None:
    generate(tmp_path / "again", seed=0, workers=2, **SMALL)  # process pool gives the same bytes
    first, again = tree_digest(demo), tree_digest(tmp_path / "again")
    assert first == again
    assert "counting/manifest.jsonl" in first and "raw/voc/food_0001.jpg" in first
    generate(tmp_path / "other", seed=1, **SMALL)
    other = tree_digest(tmp_path / "other")
    assert (
        other["raw/amazon-bin/bin-images/00001.jpg"] != first["raw/amazon-bin/bin-images/00001.jpg"]
    )


def test_counting_dataset(demo: Path) -> None:
    ds = Dataset.load(demo / "counting")
    assert ds.task == "count" and ds.classes == ["1", "2", "3", "4", "5"]
    assert len(ds) == 15 and ds.class_counts() == [3, 3, 3, 3, 3]
    assert set(ds.splits()) <= {"train", "val", "test"} and ds.splits()["train"] >= 5
    assert ds.info.split is not None and ds.info.split["ratios"] == {
        "train": 0.7,
        "val": 0.2,
        "test": 0.1,
    }
    for r in ds.records:
        with Image.open(ds.image_path(r)) as im:
            assert im.size == (48, 48) and im.format == "JPEG"
        assert r.meta["expected_quantity"] == r.count
        assert sum(it["quantity"] for it in r.meta["items"]) == r.count
        meta = json.loads((demo / "raw/amazon-bin/metadata" / f"{r.id}.json").read_text())
        assert set(meta) == {"BIN_FCSKU_DATA", "EXPECTED_QUANTITY", "image_fname"}
        assert meta["EXPECTED_QUANTITY"] == r.count
        assert meta["image_fname"] == r.file
        for asin, item in meta["BIN_FCSKU_DATA"].items():
            assert item["asin"] == asin and item["quantity"] >= 1 and item["name"]
            for dim in ("height", "length", "width"):
                assert item[dim]["unit"] == "IN" and item[dim]["value"] > 0
            assert item["weight"]["unit"] == "pounds"
        assert sum(i["quantity"] for i in meta["BIN_FCSKU_DATA"].values()) == r.count


def test_detection_dataset_and_voc_files(demo: Path) -> None:
    ds = Dataset.load(demo / "detection")
    assert ds.task == "detect" and ds.classes == list(FOOD)
    assert len(ds) == 8
    n_boxes = 0
    for r in ds.records:
        assert len(r.boxes or []) == len(r.labels or []) <= 4
        for b in r.boxes or []:
            assert not B.is_outside(b, r.width, r.height, tol=0) and not B.is_degenerate(b)
        xml = ET.parse(demo / "raw/voc" / f"{r.id}.xml").getroot()
        assert xml.findtext("filename") == r.file
        assert (int(xml.findtext("size/width") or 0), int(xml.findtext("size/height") or 0)) == (
            r.width,
            r.height,
        )
        objs = xml.findall("object")
        assert [o.findtext("name") for o in objs] == [FOOD[c] for c in r.labels or []]
        corners = [
            [int(o.findtext(f"bndbox/{k}") or -9) for k in ("xmin", "ymin", "xmax", "ymax")]
            for o in objs
        ]
        assert [[c[0] - 1, c[1] - 1, c[2], c[3]] for c in corners] == r.boxes  # VOC is 1-based
        with Image.open(ds.image_path(r)) as im:
            assert im.size == (r.width, r.height) == (60, 60)
        n_boxes += len(objs)
    assert n_boxes > 0 and ds.info.import_report["boxes"] == n_boxes


def test_rerun_replaces_and_foreign_dir_refused(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate(out, size=32, per_class=2, detect_images=3)
    generate(out, size=32, per_class=1, detect_images=2)
    assert len(list((out / "raw/amazon-bin/bin-images").iterdir())) == 5  # no stale files left
    assert len(list((out / "raw/voc").glob("*.xml"))) == 2
    assert json.loads((out / "demo.json").read_text())["complete"] is True
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not a demo-data folder"):
        generate(foreign, size=32, per_class=1)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="size"):
        generate(tmp_path / "x", size=8)


def test_cli_prints_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert (
        main(
            [
                "demo-data",
                "--out",
                str(out),
                "--size",
                "32",
                "--per-class",
                "1",
                "--detect-images",
                "2",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert str(out / "counting") in text and str(out / "raw" / "voc") in text
    assert Dataset.load(out / "counting").task == "count"


def test_raw_files_import_to_the_same_labels(demo: Path, tmp_path: Path) -> None:
    from cvpipe.data.importers import IMPORTERS, ImportOptions, import_dataset

    if "amazon-bin" not in IMPORTERS or "voc" not in IMPORTERS:
        pytest.skip("amazon-bin / voc importers not available")
    raw = demo / "raw"
    bins = import_dataset(
        "amazon-bin",
        raw / "amazon-bin/metadata",
        tmp_path / "bins",
        ImportOptions(images=str(raw / "amazon-bin/bin-images")),
    )
    ours = {r.id: r.count for r in Dataset.load(demo / "counting").records}
    assert {r.id: r.count for r in bins.records} == ours
    food = import_dataset("voc", raw / "voc", tmp_path / "food", ImportOptions())
    assert food.classes == list(FOOD)
    ours_det = {r.id: (r.boxes, r.labels) for r in Dataset.load(demo / "detection").records}
    assert {r.id: (r.boxes or [], r.labels or []) for r in food.records} == ours_det
