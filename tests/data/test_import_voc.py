"""The ``voc`` importer: LabelImg / VOCdevkit XML, clean and messy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import write_image, write_truncated_jpeg

from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.data.manifest import Dataset
from cvpipe.errors import ConfigError, DatasetError, DatasetFormatError

Obj = tuple[str, tuple[object, object, object, object]]


def voc_xml(
    filename: str,
    size: tuple[int, int] | None,
    objects: list[Obj] = (),  # type: ignore[assignment]
    *,
    path: str | None = None,
    flags: list[tuple[int, int]] | None = None,
) -> str:
    """A LabelImg-style annotation; ``flags`` gives (difficult, truncated) per object."""
    parts = ["<annotation>", "\t<folder>images</folder>", f"\t<filename>{filename}</filename>"]
    if path is not None:
        parts.append(f"\t<path>{path}</path>")
    parts.append("\t<source><database>Unknown</database></source>")
    if size is not None:
        parts.append(
            f"\t<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        )
    for i, (name, (x1, y1, x2, y2)) in enumerate(objects):
        d, t = flags[i] if flags else (0, 0)
        parts.append(
            f"\t<object><name>{name}</name><pose>Unspecified</pose><truncated>{t}</truncated>"
            f"<difficult>{d}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def report(out: Path) -> list[dict[str, object]]:
    return json.loads((out / "import_report.json").read_text())["problems"]


def kinds(out: Path) -> list[str]:
    return [p["kind"] for p in report(out)]


def by_id(ds: Dataset) -> dict[str, object]:
    return {r.id: r for r in ds}


def test_labelimg_folder_boxes_flags_and_pixel_convention(tmp_path: Path) -> None:
    src = tmp_path / "labelimg"
    write_image(src / "burger_1.jpg", (64, 48))
    write_image(src / "fries_1.jpg", (40, 32))
    write_image(src / "empty.jpg", (32, 32))
    (src / "burger_1.xml").write_text(
        voc_xml(
            "burger_1.jpg",
            (64, 48),
            [("burger", (1, 1, 30, 40)), ("fries", ("12.0", "5.5", "60", "44"))],
            flags=[(1, 0), (0, 1)],
        )
    )
    (src / "fries_1.xml").write_text(voc_xml("fries_1.jpg", (40, 32), [("fries", (3, 4, 20, 30))]))
    (src / "empty.xml").write_text(voc_xml("empty.jpg", (32, 32)))

    ds = import_dataset("voc", src, tmp_path / "ds")
    assert ds.task == "detect"
    assert ds.classes == ["burger", "fries"]
    recs = by_id(ds)
    b1 = recs["burger_1"]
    # VOC is 1-based inclusive: xmin-1, ymin-1; xmax, ymax unchanged.
    assert b1.boxes == [[0.0, 0.0, 30.0, 40.0], [11.0, 4.5, 60.0, 44.0]]
    assert b1.labels == [0, 1]
    assert b1.meta["box_meta"] == [
        {"difficult": 1, "truncated": 0},
        {"difficult": 0, "truncated": 1},
    ]
    assert (b1.width, b1.height) == (64, 48)
    assert recs["empty"].boxes == [] and recs["empty"].labels == []  # negatives are kept
    assert ds.class_counts() == [1, 2]
    assert kinds(tmp_path / "ds") == []


def test_labelimg_windows_path_wrong_filename_and_zero_size(tmp_path: Path) -> None:
    src = tmp_path / "labelimg"
    write_image(src / "burger_7.jpg", (64, 48))
    # The XML has another name, <filename> is stale, <path> is a Windows path, <size> 0x0.
    (src / "ann_7.xml").write_text(
        voc_xml(
            "IMG_0001.jpg",
            (0, 0),
            [("burger", (5, 5, 20, 20))],
            path=r"C:\Users\mag\Desktop\burgers\burger_7.jpg",
        )
    )
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out)
    (rec,) = ds.records
    assert rec.file == "burger_7.jpg"
    assert (rec.width, rec.height) == (64, 48)
    problems = {p["kind"]: p for p in report(out)}
    assert problems["filename_mismatch"]["field"] == "filename"
    assert "base name of <path>" in problems["filename_mismatch"]["message"]
    assert problems["size_mismatch"]["action"] == "used real size 64x48"
    assert "0x0" in problems["size_mismatch"]["message"]


def test_image_found_by_xml_stem_and_in_images_folder(tmp_path: Path) -> None:
    ann, imgs = tmp_path / "ann", tmp_path / "imgs"
    write_image(imgs / "a.png", (40, 30), fmt="PNG")
    write_image(imgs / "b.jpg", (40, 30))
    (ann / "a.xml").parent.mkdir(parents=True)
    (ann / "a.xml").write_text(voc_xml("renamed.jpg", (40, 30), [("cat", (2, 2, 10, 10))]))
    (ann / "b.xml").write_text(voc_xml("b.jpg", (40, 30), [("dog", (2, 2, 10, 10))]))
    ds = import_dataset("voc", ann, tmp_path / "ds", ImportOptions(images=str(imgs)))
    assert sorted(r.file for r in ds) == ["a.png", "b.jpg"]  # relative to --images
    assert ds.info.image_root.endswith("imgs")
    assert kinds(tmp_path / "ds") == ["filename_mismatch"]


def test_vocdevkit_layout_splits_from_imagesets(tmp_path: Path) -> None:
    root = tmp_path / "VOC2007"
    for name in ("000001", "000002", "000003"):
        write_image(root / "JPEGImages" / f"{name}.jpg", (48, 32))
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{name}.xml").write_text(
            voc_xml(f"{name}.jpg", (48, 32), [("person", (1, 1, 10, 10))])
        )
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("000001\n000002\n")
    (main / "val.txt").write_text("000003\n")
    ds = import_dataset("voc", root, tmp_path / "ds")
    assert {r.id: r.split for r in ds} == {"000001": "train", "000002": "train", "000003": "val"}
    assert all(r.file.endswith(".jpg") and "/" not in r.file for r in ds)  # root is JPEGImages


def test_split_from_folder_names(tmp_path: Path) -> None:
    src = tmp_path / "images"
    for split in ("train", "test"):
        write_image(src / split / "x.jpg", (32, 32))
        (src / split / "x.xml").write_text(voc_xml("x.jpg", (32, 32), [("a", (1, 1, 9, 9))]))
    ds = import_dataset("voc", src, tmp_path / "ds")
    assert {r.id: r.split for r in ds} == {"train/x": "train", "test/x": "test"}


def test_grayscale_rgba_palette_and_png_named_jpg(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "gray.jpg", (40, 30), mode="L")
    write_image(src / "rgba.png", (41, 31), mode="RGBA")
    write_image(src / "pal.png", (42, 32), mode="P")
    write_image(src / "fake.jpg", (43, 33), fmt="PNG")  # PNG content behind a .jpg name
    for stem, ext, (w, h) in [
        ("gray", "jpg", (40, 30)),
        ("rgba", "png", (41, 31)),
        ("pal", "png", (42, 32)),
        ("fake", "jpg", (43, 33)),
    ]:
        (src / f"{stem}.xml").write_text(voc_xml(f"{stem}.{ext}", (w, h), [("a", (1, 1, 10, 10))]))
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out)
    assert {r.id: (r.width, r.height) for r in ds} == {
        "fake": (43, 33),
        "gray": (40, 30),
        "pal": (42, 32),
        "rgba": (41, 31),
    }
    problems = report(out)
    assert [p["kind"] for p in problems] == ["extension_mismatch"]
    assert problems[0]["file"].endswith("fake.jpg")


def test_box_outside_clipped_and_zero_area_dropped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "a.jpg", (40, 30))
    (src / "a.xml").write_text(
        voc_xml(
            "a.jpg",
            (40, 30),
            [("a", (5, 5, 60, 20)), ("b", (10, 10, 9, 20)), ("a", (2, 2, 8, 8))],
            flags=[(0, 1), (1, 0), (1, 1)],
        )
    )
    # xmin 10 .. xmax 9 is empty in VOC's inclusive convention (10..10 would be 1 px wide).
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out)
    (rec,) = ds.records
    assert rec.boxes == [[4.0, 4.0, 40.0, 20.0], [1.0, 1.0, 8.0, 8.0]]
    assert rec.meta["box_meta"] == [
        {"difficult": 0, "truncated": 1},
        {"difficult": 1, "truncated": 1},
    ]
    assert kinds(out) == ["box_outside", "box_zero_area"]
    assert ds.classes == ["a", "b"]  # a class keeps its place even when its only box was dropped


def test_malformed_xml_reported_with_line_and_fails_under_fail(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "good.jpg", (32, 32))
    write_image(src / "bad.jpg", (32, 32))
    (src / "good.xml").write_text(voc_xml("good.jpg", (32, 32), [("a", (1, 1, 9, 9))]))
    (src / "bad.xml").write_text(
        "<annotation>\n<filename>bad.jpg</filename>\n<object><name>a</name>\n</annotation>\n"
    )
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out)
    assert [r.id for r in ds] == ["good"]
    problems = {p["kind"]: p for p in report(out)}
    assert problems["xml_invalid"]["line"] == 4
    assert problems["no_annotation"]["file"].endswith("bad.jpg")  # left out, not silently
    with pytest.raises(DatasetFormatError, match=r"bad\.xml:4: invalid XML"):
        import_dataset("voc", src, tmp_path / "ds2", ImportOptions(on_error="fail"))


def test_bad_objects_reported_per_field(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "a.jpg", (40, 30))
    (src / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>40</width><height>30</height></size>"
        "<object><name>a</name></object>"  # no bndbox
        "<object><name>a</name><bndbox><xmin>x</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
        "<object><name></name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
        "<object><name>a</name><difficult>maybe</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
        "</annotation>"
    )
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out)
    assert ds.records[0].boxes == [[0.0, 0.0, 5.0, 5.0]]
    fields = {p["kind"] + ":" + p["field"] for p in report(out)}
    assert fields == {
        "box_missing:object[0].bndbox",
        "bad_value:object[1].bndbox.xmin",
        "object_no_name:object[2].name",
        "bad_value:object[3].difficult",
    }
    with pytest.raises(DatasetFormatError, match=r"a\.xml \[object\[0\]\.bndbox\]"):
        import_dataset("voc", src, tmp_path / "ds2", ImportOptions(on_error="fail"))


def test_unknown_class_with_classes_is_left_out_and_reported(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "a.jpg", (40, 30))
    (src / "a.xml").write_text(
        voc_xml("a.jpg", (40, 30), [("burger", (1, 1, 9, 9)), ("drink", (2, 2, 9, 9))])
    )
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out, ImportOptions(classes=["fries", "burger"]))
    assert ds.classes == ["fries", "burger"]
    assert ds.records[0].labels == [1]
    (p,) = report(out)
    assert (
        p["kind"] == "class_not_selected" and "drink" in p["message"] and p["action"] == "left out"
    )


def test_missing_image_and_truncated_jpeg(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_truncated_jpeg(src / "cut.jpg", (64, 48))
    (src / "cut.xml").write_text(voc_xml("cut.jpg", (64, 48), [("a", (1, 1, 9, 9))]))
    (src / "gone.xml").write_text(voc_xml("gone.jpg", (64, 48), [("a", (1, 1, 9, 9))]))
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out)
    # Import only reads headers: a truncated JPEG with a valid header imports fine;
    # finding the missing pixels is `cvpipe validate`'s job.
    assert [r.id for r in ds] == ["cut"]
    (p,) = report(out)
    assert (
        p["kind"] == "image_missing" and "gone.jpg" in p["message"] and "--images" in p["message"]
    )
    with pytest.raises(DatasetFormatError, match=r"gone\.xml \[filename\]: image not found"):
        import_dataset("voc", src, tmp_path / "ds2", ImportOptions(on_error="fail"))


def test_oversized_and_non_voc_xml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cvpipe.data.importers.voc as voc

    src = tmp_path / "src"
    write_image(src / "a.jpg", (32, 32))
    (src / "a.xml").write_text(voc_xml("a.jpg", (32, 32), [("a", (1, 1, 9, 9))]))
    (src / "big.xml").write_text("<annotation>" + " " * 2000 + "</annotation>")
    (src / "other.xml").write_text("<config><x>1</x></config>")
    monkeypatch.setattr(voc, "MAX_XML_BYTES", 1000)
    out = tmp_path / "ds"
    import_dataset("voc", src, out)
    assert sorted(kinds(out)) == ["not_voc", "xml_too_large"]


def test_classes_txt_sets_order(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "a.jpg", (32, 32))
    (src / "a.xml").write_text(
        voc_xml("a.jpg", (32, 32), [("zebra", (1, 1, 9, 9)), ("ant", (1, 1, 9, 9))])
    )
    (src / "classes.txt").write_text("zebra\nyak\n")
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out)
    assert ds.classes == ["zebra", "yak", "ant"]
    assert kinds(out) == ["class_not_listed"]


def test_errors_for_bad_sources(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .xml files"):
        import_dataset("voc", tmp_path / "empty", tmp_path / "ds")
    with pytest.raises(DatasetError, match="source not found"):
        import_dataset("voc", tmp_path / "nope", tmp_path / "ds")
    with pytest.raises(ConfigError, match="task 'classify'"):
        import_dataset("voc", tmp_path / "empty", tmp_path / "ds", ImportOptions(task="classify"))


def test_source_files_are_not_modified(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "a.jpg", (40, 30))
    (src / "a.xml").write_text(voc_xml("a.jpg", (0, 0), [("a", (5, 5, 60, 20))]))
    before = {p: p.read_bytes() for p in src.iterdir()}
    import_dataset("voc", src, tmp_path / "ds")
    assert {p: p.read_bytes() for p in src.iterdir()} == before


# -- layouts: the image found by file name anywhere under SOURCE -------------------------


def test_annotations_and_images_folders_import_without_images_flag(tmp_path: Path) -> None:
    root = tmp_path / "burgers"
    for name in ("b1", "b2"):
        write_image(root / "images" / f"{name}.jpg", (48, 32))
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{name}.xml").write_text(
            voc_xml(f"{name}.jpg", (48, 32), [("burger", (1, 1, 10, 10))])
        )
    write_image(root / "images" / "lonely.jpg", (48, 32))
    out = tmp_path / "ds"
    ds = import_dataset("voc", root, out)
    assert {r.id: r.file for r in ds} == {"b1": "images/b1.jpg", "b2": "images/b2.jpg"}
    (p,) = report(out)  # the image without an XML is reported, nothing else
    assert p["kind"] == "no_annotation" and p["file"].endswith("lonely.jpg")


def test_vocdevkit_without_default_folder_and_flat_folder(tmp_path: Path) -> None:
    # Annotations/ + JPEGImages/ + ImageSets (ignored for the lookup), images elsewhere
    root = tmp_path / "VOC2012"
    write_image(root / "photos" / "2012_000001.jpg", (48, 32))
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "2012_000001.xml").write_text(
        voc_xml("2012_000001.jpg", (48, 32), [("cat", (1, 1, 10, 10))])
    )
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("2012_000001\n")
    ds = import_dataset("voc", root, tmp_path / "ds")
    assert [(r.id, r.file, r.split) for r in ds] == [
        ("2012_000001", "photos/2012_000001.jpg", "train")
    ]
    flat = tmp_path / "flat"
    write_image(flat / "a.jpg", (40, 30))
    (flat / "a.xml").write_text(voc_xml("a.jpg", (40, 30), [("cat", (1, 1, 9, 9))]))
    assert [r.file for r in import_dataset("voc", flat, tmp_path / "ds2")] == ["a.jpg"]


def test_tree_lookup_by_stem_and_windows_path_and_case(tmp_path: Path) -> None:
    root = tmp_path / "set"
    write_image(root / "imgs" / "deep" / "x1.png", (40, 30), fmt="PNG")
    write_image(root / "imgs" / "IMG_7.JPG", (40, 30))
    write_image(root / "imgs" / "Case.jpg", (40, 30))
    ann = root / "labels"
    ann.mkdir(parents=True)
    (ann / "x1.xml").write_text(voc_xml("stale.jpg", (40, 30), [("a", (1, 1, 9, 9))]))
    (ann / "w.xml").write_text(
        voc_xml("gone.jpg", (40, 30), [("a", (1, 1, 9, 9))], path=r"D:\cam\IMG_7.JPG")
    )
    (ann / "case.xml").write_text(voc_xml("case.JPG", (40, 30), [("a", (1, 1, 9, 9))]))
    out = tmp_path / "ds"
    ds = import_dataset("voc", root, out)
    assert {r.id: r.file for r in ds} == {
        "labels/x1": "imgs/deep/x1.png",
        "labels/w": "imgs/IMG_7.JPG",
        "labels/case": "imgs/Case.jpg",
    }
    mismatch = [p for p in report(out) if p["kind"] == "filename_mismatch"]
    assert len(mismatch) == 3 and all("found elsewhere" in p["message"] for p in mismatch)


def test_ambiguous_name_reported_with_both_paths_and_images_decides(tmp_path: Path) -> None:
    root = tmp_path / "set"
    for split in ("train", "val"):
        write_image(root / "images" / split / "same.jpg", (40, 30), seed=len(split))
    (root / "annotations" / "val").mkdir(parents=True)
    (root / "annotations" / "val" / "same.xml").write_text(
        voc_xml("same.jpg", (40, 30), [("a", (1, 1, 9, 9))])
    )
    (root / "annotations" / "loose.xml").write_text(
        voc_xml("same.jpg", (40, 30), [("a", (1, 1, 9, 9))])
    )
    out = tmp_path / "ds"
    ds = import_dataset("voc", root, out)
    # val/same.xml shares the folder "val" with images/val; loose.xml shares nothing
    assert {r.id: (r.file, r.split) for r in ds} == {
        "val/same": ("images/val/same.jpg", "val"),
        "loose": ("images/train/same.jpg", None),
    }
    amb = {p["file"]: p for p in report(out) if p["kind"] == "image_ambiguous"}
    assert len(amb) == 2
    for p in amb.values():
        assert "train/same.jpg" in p["message"] and "val/same.jpg" in p["message"]
        assert "--images" in p["action"]
    val = next(p for f, p in amb.items() if f.endswith("same.xml"))
    assert "shares 'val'" in val["action"]
    loose = next(p for f, p in amb.items() if f.endswith("loose.xml"))
    assert "first in sorted order" in loose["action"]
    ds2 = import_dataset(
        "voc", root, tmp_path / "ds2", ImportOptions(images=str(root / "images" / "val"))
    )
    assert {r.file for r in ds2} == {"same.jpg"}
    assert "image_ambiguous" not in kinds(tmp_path / "ds2")


def test_missing_image_message_says_where_it_looked(tmp_path: Path) -> None:
    root = tmp_path / "set"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "a.xml").write_text(voc_xml("a.jpg", (40, 30), []))
    write_image(root / "images" / "b.jpg", (40, 30))
    (root / "annotations" / "b.xml").write_text(voc_xml("b.jpg", (40, 30), []))
    out = tmp_path / "ds"
    import_dataset("voc", root, out)
    (p,) = [p for p in report(out) if p["kind"] == "image_missing"]
    assert f"anywhere under {root}" in p["message"]


def test_annotations_folder_without_xml_leaves_the_tree_searched(tmp_path: Path) -> None:
    root = tmp_path / "set"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances.json").write_text("{}")
    write_image(root / "imgs" / "a.jpg", (40, 30))
    (root / "imgs" / "a.xml").write_text(voc_xml("a.jpg", (40, 30), [("a", (1, 1, 9, 9))]))
    ds = import_dataset("voc", root, tmp_path / "ds")
    assert [(r.id, r.file) for r in ds] == [("imgs/a", "imgs/a.jpg")]
