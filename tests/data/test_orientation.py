"""EXIF orientation: decode, boxes, ``--exif apply`` import, validate, training decodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from tests.data.exif_images import BOX, H, W, white_box, write_oriented
from tests.data.test_import_voc import voc_xml

import cvpipe.orientation as O
from cvpipe.data.datasets import ImageDataset
from cvpipe.data.detection_datasets import DetectionDataset, detection_targets
from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.data.manifest import Dataset
from cvpipe.data.pack import PackConfig, PackReader, pack_dataset
from cvpipe.data.validate import validate
from cvpipe.images import decode, probe

VALID = list(range(1, 9))
INVALID = [0, 9, 65537]


def report(out: Path) -> dict[str, object]:
    return json.loads((out / "import_report.json").read_text())


@pytest.mark.parametrize("value", VALID)
def test_decode_turns_like_a_photo_viewer(tmp_path: Path, value: int) -> None:
    p = write_oriented(tmp_path / "a.jpg", value)
    with Image.open(p) as raw:
        viewer = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"))  # Pillow's reference
        stored = np.asarray(raw.convert("RGB"))
    assert np.array_equal(np.asarray(decode(p, orientation=value)), viewer)
    assert np.array_equal(np.asarray(decode(p, orientation="exif")), viewer)
    assert np.array_equal(np.asarray(decode(p)), stored)  # default: stored pixels
    info = probe(p, exif=True)
    assert (info.width, info.height, info.orientation) == (W, H, value)
    assert probe(p).orientation is None  # read only when asked
    assert viewer.shape[1::-1] == O.oriented_size(W, H, value)


@pytest.mark.parametrize("value", VALID)
def test_boxes_follow_the_pixels(tmp_path: Path, value: int) -> None:
    p = write_oriented(tmp_path / "a.jpg", value)
    (box,) = O.orient_boxes([BOX], W, H, value)
    assert white_box(decode(p, orientation=value)) == pytest.approx(box, abs=1)
    # and back: the inverse orientation maps the box onto the stored one
    inverse = {6: 8, 8: 6}.get(value, value)
    ow, oh = O.oriented_size(W, H, value)
    assert O.orient_boxes([box], ow, oh, inverse) == [pytest.approx(BOX)]


@pytest.mark.parametrize("value", INVALID)
def test_invalid_values_are_read_but_never_turn(tmp_path: Path, value: int) -> None:
    p = write_oriented(tmp_path / "a.jpg", value)
    assert probe(p, exif=True).orientation == value
    assert not O.is_valid(value)
    assert decode(p, orientation="exif").size == (W, H)
    assert decode(p, orientation=value).size == (W, H)
    assert O.orient_boxes([BOX], W, H, value) == [BOX]


def test_draft_decode_is_sized_in_the_oriented_frame(tmp_path: Path) -> None:
    p = write_oriented(tmp_path / "big.jpg", 6, size=(640, 400))
    im = decode(p, draft=(100, 150), orientation=6)
    assert im.width < im.height  # turned
    assert im.width >= 100 and im.height >= 150 and im.size != (400, 640)  # still reduced


# -- import --exif apply --------------------------------------------------------------


def _voc(src: Path, values: dict[str, int | None]) -> None:
    for name, value in values.items():
        write_oriented(src / f"{name}.jpg", value)
        box = (BOX[0] + 1, BOX[1] + 1, BOX[2], BOX[3])  # VOC is 1-based inclusive
        (src / f"{name}.xml").write_text(voc_xml(f"{name}.jpg", (W, H), [("block", box)]))


def test_voc_import_apply_records_orientation_and_turns_boxes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    values: dict[str, int | None] = {f"o{v}": v for v in VALID} | {"plain": None}
    _voc(src, values)
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out, ImportOptions(exif="apply"))
    assert ds.info.exif == "apply"
    for rec in ds:
        value = values[rec.id]
        assert rec.orientation == (value if value not in (None, 1) else None)
        assert (rec.width, rec.height) == O.oriented_size(W, H, value)
        assert rec.boxes == [pytest.approx(O.orient_boxes([BOX], W, H, value)[0])]
        # the round trip: the decoded record shows the block where its box says
        assert white_box(ds.load_image(rec)) == pytest.approx(rec.boxes[0], abs=1)
    summary = report(out)["summary"]
    assert summary["exif"]["oriented_images"] == 7
    assert "oriented frame" in summary["exif"]["frame"]
    # the default keeps the stored pixels and records nothing
    kept = import_dataset("voc", src, tmp_path / "kept")
    assert kept.info.exif is None
    assert all(r.orientation is None and (r.width, r.height) == (W, H) for r in kept)
    assert all(r.boxes == [BOX] for r in kept)
    assert "exif" not in report(tmp_path / "kept")["summary"]


def test_import_apply_reports_invalid_values_and_keeps_them_stored(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _voc(src, {f"bad{v}": v for v in INVALID})
    out = tmp_path / "ds"
    ds = import_dataset("voc", src, out, ImportOptions(exif="apply"))
    assert all(r.orientation is None and r.boxes == [BOX] for r in ds)
    problems = report(out)["problems"]
    assert sorted(p["kind"] for p in problems) == ["exif_orientation_invalid"] * 3
    assert any("65537" in p["message"] and "1-8" in p["message"] for p in problems)


def test_imagefolder_apply_and_cli_flag(tmp_path: Path) -> None:
    from cvpipe.cli.main import main

    write_oriented(tmp_path / "src" / "cat" / "a.jpg", 8)
    write_oriented(tmp_path / "src" / "dog" / "b.jpg", 3)
    assert main(["import", "imagefolder", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--exif", "apply"]) == 0  # fmt: skip
    ds = Dataset.load(tmp_path / "ds")
    recs = {r.id.split("/")[-1]: r for r in ds}
    assert (recs["a"].width, recs["a"].height, recs["a"].orientation) == (H, W, 8)
    assert (recs["b"].width, recs["b"].height, recs["b"].orientation) == (W, H, 3)


# -- validate ---------------------------------------------------------------------------


def test_validate_invalid_orientation_is_not_a_rotation(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for v in (0, 6, 65537):
        write_oriented(src / "c" / f"o{v}.jpg", v)
    import_dataset("imagefolder", src, tmp_path / "ds")
    found = {Path(p.file).stem: p for p in validate(tmp_path / "ds", hash=False).problems}
    assert found["o6"].kind == "exif_orientation" and "--exif apply" in found["o6"].action
    for v in (0, 65537):
        p = found[f"o{v}"]
        assert p.kind == "exif_orientation_invalid" and "not a valid value (1-8)" in p.message
        assert "viewers rotate" not in p.message


def test_validate_accepts_an_applied_orientation(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _voc(src, {"o6": 6, "o5": 5})
    import_dataset("voc", src, tmp_path / "ds", ImportOptions(exif="apply"))
    assert validate(tmp_path / "ds", hash=False).problems == []


# -- every decode of a record is oriented -------------------------------------------------


@pytest.fixture
def applied(tmp_path: Path) -> Dataset:
    src = tmp_path / "src"
    _voc(src, {"o6": 6, "o3": 3, "o1": 1})
    return import_dataset("voc", src, tmp_path / "ds", ImportOptions(exif="apply"))


def test_detection_dataset_decodes_oriented_pixels_and_boxes(applied: Dataset) -> None:
    recs = applied.records
    det = DetectionDataset(applied, recs, detection_targets(recs, len(applied.classes)))
    for i, rec in enumerate(recs):
        want = np.asarray(decode(applied.image_path(rec), orientation=rec.orientation))
        assert np.array_equal(np.asarray(det.load_image(i)), want)
        image, target = det[i]
        assert tuple(image.shape) == (3, rec.height, rec.width)
        assert target["boxes"][0].tolist() == pytest.approx(rec.boxes[0])
        drawn = Image.fromarray(image.permute(1, 2, 0).numpy())
        assert white_box(drawn) == pytest.approx(rec.boxes[0], abs=1)


def test_classify_dataset_and_planned_crop_decode_oriented_pixels(tmp_path: Path) -> None:
    import torch
    from torchvision.transforms import v2 as T

    from cvpipe.data.transforms import RandomResizedCropTransform

    write_oriented(tmp_path / "src" / "c" / "a.jpg", 6, size=(320, 200))
    ds = import_dataset("imagefolder", tmp_path / "src", tmp_path / "ds", ImportOptions(exif="apply"))  # fmt: skip
    (rec,) = ds.records
    assert (rec.width, rec.height) == (200, 320)
    plain = ImageDataset(ds, ds.records, transform=None, draft=None, on_error="fail")
    image, _ = plain[0]
    assert tuple(image.shape) == (320, 200, 3)  # HWC, turned
    assert white_box(Image.fromarray(image.numpy())) == pytest.approx(
        O.orient_boxes([[40.0, 20.0, 140.0, 80.0]], 320, 200, 6)[0], abs=1
    )
    # a crop drawn from the record's (oriented) size decodes a turned, reduced image
    rest = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])
    rrc = RandomResizedCropTransform(
        T.RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(0.625, 0.625)), rest
    )
    crop = ImageDataset(ds, ds.records, transform=rrc, draft=32, on_error="fail")
    x, _ = crop[(0, 7)]
    assert tuple(x.shape) == (3, 32, 32)
    assert crop.load_image(0, (50, 80)).width < crop.load_image(0, (50, 80)).height


def test_pack_stores_oriented_pixels(applied: Dataset, tmp_path: Path) -> None:
    pack_dataset(applied, tmp_path / "pack", PackConfig(size=32))
    reader = PackReader.open(tmp_path / "pack")
    for rec in applied:
        arr = reader.get(rec)
        assert arr is not None
        h, w = arr.shape[:2]
        assert (w > h) == (rec.width > rec.height)


def test_pack_and_feature_cache_never_mix_turned_and_stored_pixels(
    applied: Dataset, tmp_path: Path
) -> None:
    from cvpipe.engine.features import records_digest

    kept = import_dataset("voc", tmp_path / "src", tmp_path / "kept")
    pack_dataset(kept, tmp_path / "kept_pack", PackConfig(size=32))
    reader = PackReader.open(tmp_path / "kept_pack")
    turned = [r for r in applied if r.orientation is not None]
    plain = {r.id: r for r in kept}
    assert turned and all(reader.get(r) is None for r in turned)
    assert all(reader.get(plain[r.id]) is not None for r in turned)
    assert reader.coverage(applied.records) == pytest.approx(1 / 3)  # only o1 matches
    assert records_digest(turned) != records_digest([plain[r.id] for r in turned])
