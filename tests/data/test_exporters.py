"""Exporters: import → export → import gives the same dataset, for every format."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import write_image

from cvpipe.data.exporters import EXPORTERS, export_dataset
from cvpipe.data.exporters.base import export_relpaths
from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.errors import ConfigError, DatasetError, UnknownNameError

CLASSES = ["zebra", "ant", "mouse", "yak"]  # not sorted; "yak" has no boxes


def make_detect_dataset(tmp_path: Path) -> Dataset:
    """Images of several sizes and formats, fractional boxes, flags, a negative, splits."""
    imgs = tmp_path / "imgs"
    specs = [
        (
            "a.jpg",
            (64, 48),
            "train",
            [[0, 0, 30, 20], [10.5, 3.25, 63.75, 47]],
            [0, 1],
            [
                {"difficult": 1, "iscrowd": 0, "truncated": 0},
                {"difficult": 0, "iscrowd": 1, "truncated": 1},
            ],
        ),
        (
            "b.png",
            (40, 32),
            "train",
            [[1, 2, 39, 31]],
            [2],
            [{"difficult": 0, "iscrowd": 0, "truncated": 0}],
        ),
        (
            "sub/c.jpg",
            (50, 70),
            "train",
            [[5, 5, 20, 60], [22.125, 7, 49, 69.5], [0, 0, 50, 70]],
            [1, 1, 0],
            [{"difficult": 0, "iscrowd": 0, "truncated": 1}] * 3,
        ),
        ("d.jpg", (32, 32), "val", [], [], []),
        (
            "e.jpg",
            (45, 45),
            "test",
            [[3, 3, 9.5, 9.5]],
            [2],
            [{"difficult": 1, "iscrowd": 1, "truncated": 0}],
        ),
    ]
    records = []
    for i, (file, size, split, boxes, labels, box_meta) in enumerate(specs):
        write_image(imgs / file, size, fmt="PNG" if file.endswith(".png") else None, seed=i)
        meta = {"box_meta": box_meta} if box_meta else {}
        records.append(
            Record(
                id=Path(file).stem,
                file=file,
                width=size[0],
                height=size[1],
                split=split,
                boxes=[[float(v) for v in b] for b in boxes],
                labels=labels,
                meta=meta,
            )
        )
    info = DatasetInfo(
        name="food",
        task="detect",
        classes=CLASSES,
        image_root=os.path.relpath(imgs, tmp_path / "ds"),
    )
    Dataset(tmp_path / "ds", info, records).save()
    return Dataset.load(tmp_path / "ds")


def canonical(ds: Dataset, flags: tuple[str, ...]) -> dict[Path, dict[str, Any]]:
    """Records keyed by the real image file, labels as names, chosen box flags."""
    out = {}
    for r in ds:
        box_meta = r.meta.get("box_meta") or [{} for _ in r.boxes or []]
        out[ds.image_path(r).resolve()] = {
            "size": (r.width, r.height),
            "split": r.split,
            "boxes": r.boxes or [],
            "labels": [ds.classes[i] for i in r.labels or []],
            "flags": [{k: m.get(k, 0) for k in flags} for m in box_meta],
        }
    return out


def assert_same(a: Dataset, b: Dataset, tol: float, flags: tuple[str, ...]) -> None:
    assert b.classes == a.classes
    ca, cb = canonical(a, flags), canonical(b, flags)
    assert set(ca) == set(cb)
    for key, ra in ca.items():
        rb = cb[key]
        for field in ("size", "split", "labels", "flags"):
            assert ra[field] == rb[field], (key.name, field)
        assert len(ra["boxes"]) == len(rb["boxes"])
        for ba, bb in zip(ra["boxes"], rb["boxes"], strict=True):
            assert max(abs(x - y) for x, y in zip(ba, bb, strict=True)) <= tol, (key.name, ba, bb)


FLAGS = {
    "coco": ("iscrowd", "difficult", "truncated"),
    "voc": ("difficult", "truncated"),
    "yolo": (),
}
TOL = {"coco": 1e-3, "voc": 1e-3, "yolo": 0.01}


@pytest.mark.parametrize("copy", [False, True], ids=["reference", "copy"])
@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_detect_round_trip(tmp_path: Path, fmt: str, copy: bool) -> None:
    ds = make_detect_dataset(tmp_path)
    before = {p.name: p.read_bytes() for p in ds.root.iterdir()}
    out = export_dataset(ds.root, fmt, tmp_path / "export", copy_images=copy)
    assert out == tmp_path / "export"
    options = ImportOptions()
    if fmt == "coco" and not copy:
        options = ImportOptions(images=str(ds.image_root))
    back = import_dataset(fmt, out, tmp_path / "back", options)
    assert json.loads((tmp_path / "back" / "import_report.json").read_text())["problems"] == []
    if copy:  # images now live in the export: compare against them by content
        for r in back:
            assert back.image_path(r).resolve().is_relative_to(out.resolve())
        by_bytes = {ds.image_path(r).read_bytes(): ds.image_path(r).resolve() for r in ds}
        for r in back:
            r.file = os.path.relpath(by_bytes[back.image_path(r).read_bytes()], back.image_root)
    assert_same(ds, back, TOL[fmt], FLAGS[fmt])
    assert {p.name: p.read_bytes() for p in ds.root.iterdir()} == before  # source untouched
    # a second round trip is stable too
    again = import_dataset(
        fmt,
        export_dataset(back, fmt, tmp_path / "export2", copy_images=copy),
        tmp_path / "again",
        options if not copy else ImportOptions(),
    )
    assert len(again) == len(ds)


def test_chained_formats_keep_boxes(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path)
    coco = import_dataset(
        "coco",
        export_dataset(ds, "coco", tmp_path / "e1"),
        tmp_path / "d1",
        ImportOptions(images=str(ds.image_root)),
    )
    voc = import_dataset("voc", export_dataset(coco, "voc", tmp_path / "e2"), tmp_path / "d2")
    yolo = import_dataset("yolo", export_dataset(voc, "yolo", tmp_path / "e3"), tmp_path / "d3")
    assert_same(ds, voc, 1e-3, ("difficult", "truncated"))
    assert_same(ds, yolo, 0.01, ())


def test_labelimg_voc_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "labelimg"
    write_image(src / "burger_1.jpg", (64, 48))
    write_image(src / "fries_2.jpg", (48, 64))
    (src / "burger_1.xml").write_text(
        "<annotation><filename>burger_1.jpg</filename><size><width>64</width><height>48</height><depth>3</depth></size>"
        "<object><name>burger</name><difficult>1</difficult><truncated>0</truncated><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>40</xmax><ymax>45</ymax></bndbox></object>"
        "<object><name>fries</name><difficult>0</difficult><truncated>1</truncated><bndbox><xmin>30</xmin><ymin>1</ymin><xmax>64</xmax><ymax>20</ymax></bndbox></object>"
        "</annotation>"
    )
    (src / "fries_2.xml").write_text(
        "<annotation><filename>fries_2.jpg</filename><size><width>48</width><height>64</height></size></annotation>"
    )
    first = import_dataset("voc", src, tmp_path / "d1")
    back = import_dataset("voc", export_dataset(first, "voc", tmp_path / "e"), tmp_path / "d2")
    assert_same(first, back, 0.0, ("difficult", "truncated"))
    xml = (tmp_path / "e" / "Annotations" / "burger_1.xml").read_text()
    assert (
        "<xmin>3</xmin>" in xml and "<ymax>45</ymax>" in xml and "<depth>3</depth>" in xml
    )  # 1-based again


def test_coco_export_loads_in_pycocotools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pycoco = pytest.importorskip("pycocotools.coco")
    ds = make_detect_dataset(tmp_path)
    out = export_dataset(ds, "coco", tmp_path / "e")
    assert sorted(p.name for p in (out / "annotations").iterdir()) == [
        "instances_test.json",
        "instances_train.json",
        "instances_val.json",
    ]
    api = pycoco.COCO(str(out / "annotations" / "instances_train.json"))
    capsys.readouterr()
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == CLASSES
    assert [c["id"] for c in api.loadCats(api.getCatIds())] == [1, 2, 3, 4]
    anns = api.loadAnns(api.getAnnIds())
    assert len(anns) == 6
    first = anns[1]
    assert first["bbox"] == [10.5, 3.25, 53.25, 43.75] and first["iscrowd"] == 1
    assert first["area"] == pytest.approx(53.25 * 43.75, abs=1e-3)


def test_yolo_export_layout(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path)
    out = export_dataset(ds, "yolo", tmp_path / "e")
    data = (out / "data.yaml").read_text()
    assert "train: train.txt" in data and "0: zebra" in data and "nc: 4" in data
    assert (out / "images" / "train" / "a.jpg").is_symlink()
    assert (out / "labels" / "train" / "sub" / "c.txt").read_text().count("\n") == 3
    assert (out / "labels" / "val" / "d.txt").read_text() == ""  # negative: empty label file
    assert (out / "train.txt").read_text().splitlines()[0] == "./images/train/a.jpg"


def test_no_split_dataset_round_trips_without_splits(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path)
    for r in ds.records:
        r.split = None
    for fmt in ("coco", "voc", "yolo"):
        out = export_dataset(ds, fmt, tmp_path / f"e_{fmt}")
        opts = ImportOptions(images=str(ds.image_root)) if fmt == "coco" else ImportOptions()
        back = import_dataset(fmt, out, tmp_path / f"b_{fmt}", opts)
        assert back.splits() == {None: 5}, fmt
    assert (tmp_path / "e_coco" / "annotations" / "instances.json").is_file()
    assert "no train/val split" in (tmp_path / "e_yolo" / "data.yaml").read_text()


def make_classify_tree(tmp_path: Path) -> Path:
    src = tmp_path / "scenes"
    sizes = {"buildings": (40, 30), "forest": (32, 48), "sea": (50, 50)}
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        for c, size in sizes.items():
            for i in range(n):
                write_image(src / split / c / f"{c}_{i}.jpg", size, seed=i)
    (src / "val" / "glacier").mkdir(parents=True)  # a class without images in any split
    return src


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "link"])
def test_imagefolder_round_trip(tmp_path: Path, copy: bool) -> None:
    first = import_dataset("imagefolder", make_classify_tree(tmp_path), tmp_path / "d1")
    out = export_dataset(first, "imagefolder", tmp_path / "e", copy_images=copy)
    assert (out / "train" / "glacier").is_dir() and (out / "test" / "glacier").is_dir()
    assert (out / "train" / "sea" / "sea_0.jpg").is_symlink() is (not copy)
    back = import_dataset("imagefolder", out, tmp_path / "d2")
    assert back.classes == first.classes == ["buildings", "forest", "glacier", "sea"]

    def key(ds: Dataset) -> list[tuple[Any, ...]]:
        return sorted(
            (r.split, ds.classes[r.label or 0], Path(r.file).name, r.width, r.height) for r in ds
        )

    assert key(back) == key(first)
    assert back.class_counts() == first.class_counts()


def test_count_dataset_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "bins"
    for count in ("1", "2", "3"):
        write_image(src / count / f"bin_{count}.jpg", (32, 32))
    first = import_dataset(
        "imagefolder", src, tmp_path / "d1", ImportOptions(task="count", counts="1-3")
    )
    out = export_dataset(first, "imagefolder", tmp_path / "e")
    back = import_dataset(
        "imagefolder", out, tmp_path / "d2", ImportOptions(task="count", counts="1-3")
    )
    assert sorted(r.count for r in back) == [1, 2, 3] and back.classes == ["1", "2", "3"]


def test_task_and_format_mismatch_name_the_formats_that_fit(tmp_path: Path) -> None:
    classify = import_dataset("imagefolder", make_classify_tree(tmp_path), tmp_path / "d1")
    with pytest.raises(
        DatasetError, match=r"'coco' writes detect .* fit a classify dataset: imagefolder"
    ):
        export_dataset(classify, "coco", tmp_path / "e")
    detect = make_detect_dataset(tmp_path)
    with pytest.raises(DatasetError, match=r"fit a detect dataset: coco, voc, yolo"):
        export_dataset(detect, "imagefolder", tmp_path / "e")
    assert not (tmp_path / "e").exists()


def test_bad_requests(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path)
    with pytest.raises(UnknownNameError, match="did you mean 'yolo'"):
        export_dataset(ds, "yollo", tmp_path / "e")
    with pytest.raises(ConfigError, match="unknown key 'copy'"):
        export_dataset(ds, "coco", tmp_path / "e", copy=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(DatasetError, match="not empty"):
        export_dataset(ds, "voc", tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with pytest.raises(DatasetError, match="not empty"):
        export_dataset(ds, "voc", ds.root)  # never writes into the source dataset
    (tmp_path / "empty").mkdir()
    assert export_dataset(ds, "voc", tmp_path / "empty") == tmp_path / "empty"


def test_missing_image_leaves_no_partial_output(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path)
    ds.image_path(ds.records[3]).unlink()
    with pytest.raises(DatasetError, match=r"d\.jpg: image of record 'd' not found"):
        export_dataset(ds, "yolo", tmp_path / "e", copy_images=True)
    assert not (tmp_path / "e").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".e.")] == []  # staging removed


def test_imagefolder_needs_all_or_no_splits(tmp_path: Path) -> None:
    ds = import_dataset("imagefolder", make_classify_tree(tmp_path), tmp_path / "d1")
    ds.records[0].split = None
    with pytest.raises(DatasetError, match="have no split while the others do"):
        export_dataset(ds, "imagefolder", tmp_path / "e")


def test_export_relpaths_stay_inside_and_never_clash() -> None:
    recs = [
        Record(id=str(i), file=f, width=1, height=1)
        for i, f in enumerate(
            ["images/train/a.jpg", "train/a.png", "../../x/b.jpg", "C:/b.JPG", "A.jpg"]
        )
    ]
    got = {k: v.as_posix() for k, v in export_relpaths(recs, strip=("train",)).items()}
    assert got == {"0": "a.jpg", "1": "a_1.png", "2": "x/b.jpg", "3": "b.JPG", "4": "A_2.jpg"}


def test_registry_lists_formats() -> None:
    assert EXPORTERS.names() == ["coco", "imagefolder", "voc", "yolo"]
