"""validate: broken images, bad boxes, duplicates and leaks, the three policies, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from tests.conftest import write_image, write_truncated_jpeg

from cvpipe.cli.main import main
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.data.validate import check_image, validate
from cvpipe.errors import ConfigError, ValidationFailed


def make_dataset(
    tmp_path: Path, records: list[Record], task: str = "classify", classes: list[str] | None = None
) -> Path:
    root = tmp_path / "ds"
    info = DatasetInfo(name="t", task=task, classes=classes or ["a", "b"], image_root="../src")  # type: ignore[arg-type]
    Dataset(root, info, records).save()
    return root


def rec(
    id: str, file: str, size: tuple[int, int] = (48, 32), split: str | None = "train", **kw
) -> Record:
    return Record(id=id, file=file, width=size[0], height=size[1], split=split, **kw)


def kinds(report) -> dict[str, int]:
    return report.counts()


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A classify dataset with one good image and one of each broken kind."""
    src = tmp_path / "src"
    write_image(src / "good.jpg", (48, 32))
    write_truncated_jpeg(src / "trunc.jpg", (64, 48))
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 3)
    write_image(src / "png_named.jpg", (48, 32), fmt="PNG")
    write_image(src / "wrong_size.png", (40, 30))
    records = [
        rec("good", "good.jpg", label=0),
        rec("trunc", "trunc.jpg", (64, 48), label=0),
        rec("corrupt", "corrupt.jpg", label=1),
        rec("missing", "missing.jpg", label=1),
        rec("png", "png_named.jpg", label=1),
        rec("size", "wrong_size.png", (48, 32), label=0),
        rec("badlabel", "good.jpg", split="train", label=7),
    ]
    return make_dataset(tmp_path, records)


def test_check_image_reads_size_format_and_hash(tmp_path: Path) -> None:
    p = write_image(tmp_path / "a.png", (40, 30))
    res = check_image(p)
    assert (res.width, res.height, res.format, res.error_kind) == (40, 30, "PNG", None)
    assert res.digest is not None and len(res.digest) == 32
    assert check_image(tmp_path / "nope.jpg").error_kind == "missing"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert check_image(tmp_path / "empty.jpg").error_kind == "empty"


def test_broken_images_are_found_and_located(broken: Path) -> None:
    report = validate(broken, workers=2)
    by_id = {p.id: p for p in report.problems if p.kind != "duplicate"}
    assert by_id["trunc"].kind == "image_truncated" and by_id["trunc"].severity == "error"
    assert by_id["corrupt"].kind in ("image_unreadable", "image_corrupt")
    assert by_id["missing"].kind == "image_missing"
    assert by_id["png"].kind == "extension_mismatch" and by_id["png"].severity == "warning"
    assert (
        by_id["size"].kind == "size_mismatch"
        and "48x32" in by_id["size"].message
        and "40x30" in by_id["size"].message
    )
    assert by_id["badlabel"].kind == "label_out_of_range" and by_id["badlabel"].field == "label"
    assert "good" not in by_id
    assert by_id["trunc"].file.endswith("trunc.jpg")
    assert by_id["trunc"].action.startswith("none (--on-error skip")
    data = json.loads((broken / "validation.json").read_text())
    assert data["summary"]["errors"] == 4 and data["summary"]["policy"] == "report"
    assert {p["kind"] for p in data["problems"]} >= {
        "image_truncated",
        "image_missing",
        "extension_mismatch",
    }
    assert all(
        {"file", "kind", "message", "action", "severity"} <= set(p) for p in data["problems"]
    )


def test_same_findings_with_one_or_many_workers(broken: Path) -> None:
    a = validate(broken, workers=1, chunk_size=1)
    b = validate(broken, workers=3, chunk_size=2)
    assert [(p.id, p.kind) for p in a.problems] == [(p.id, p.kind) for p in b.problems]


def test_boxes_checked_against_the_real_image(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "a.jpg", (64, 48))
    write_image(src / "b.jpg", (64, 48), seed=1)
    boxes = [
        [10, 10, 30, 30],
        [50, 10, 80, 40],
        [20, 20, 20, 40],
        [1, 2, float("nan"), 4],
        [5, 5, 9, 9],
        [70, 0, 90, 10],
    ]
    records = [
        rec(
            "a",
            "a.jpg",
            (64, 48),
            boxes=boxes,
            labels=[0, 1, 0, 1, 5, 0],
            meta={"box_meta": [{"k": i} for i in range(6)]},
        ),
        rec("b", "b.jpg", (64, 48), boxes=[], labels=[]),
    ]
    root = make_dataset(tmp_path, records, task="detect")
    report = validate(root, on_error="skip")
    assert kinds(report) == {
        "box_nan": 1,
        "box_outside": 2,
        "box_zero_area": 2,
        "label_out_of_range": 1,
        "no_annotations": 1,
    }
    neg = report.examples("no_annotations")[0]
    assert (neg.id, neg.severity, neg.action) == ("b", "info", "kept (negative)")
    assert report.summary["boxes_clipped"] == 2 and report.summary["boxes_dropped"] == 4
    cleaned = Dataset.load(root)
    a = cleaned.records[0]
    assert a.boxes == [[10, 10, 30, 30], [50, 10, 64, 40]]
    assert a.labels == [0, 1]
    assert a.meta["box_meta"] == [{"k": 0}, {"k": 1}]
    assert report.left_out == []


def test_duplicates_and_leaks_across_splits(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "x.jpg", seed=3)
    shutil.copy(src / "x.jpg", src / "x_copy.jpg")
    shutil.copy(src / "x.jpg", src / "x_test.jpg")
    write_image(src / "y.jpg", seed=4)
    records = [
        rec("x", "x.jpg", label=0),
        rec("x_copy", "x_copy.jpg", label=1),
        rec("x_test", "x_test.jpg", split="test", label=0),
        rec("y", "y.jpg", split="test", label=1),
    ]
    root = make_dataset(tmp_path, records)
    report = validate(root)
    assert kinds(report) == {"duplicate": 1, "leak": 1}
    dup, leak = report.examples("duplicate")[0], report.examples("leak")[0]
    assert dup.id == "x_copy" and dup.severity == "warning" and dup.ref.endswith("x.jpg")
    assert "labelled 'b' instead of 'a'" in dup.message
    assert leak.id == "x_test" and leak.severity == "error" and leak.ref.endswith("x.jpg")
    assert report.summary["duplicate_groups"] == 1 and report.summary["leaks"] == 1
    assert validate(root, hash=False).counts() == {}


def test_exif_orientation_is_a_warning(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    im = Image.new("RGB", (40, 30), (200, 10, 10))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(src / "rot.jpg", exif=exif)
    root = make_dataset(tmp_path, [rec("rot", "rot.jpg", (40, 30), label=0)])
    (p,) = validate(root).problems
    assert (p.kind, p.severity) == ("exif_orientation", "warning")


def test_fail_policy_raises_after_writing_the_report(broken: Path) -> None:
    with pytest.raises(ValidationFailed, match="image_truncated") as info:
        validate(broken, on_error="fail")
    assert info.value.exit_code == 1
    assert info.value.report.summary["errors"] == 4
    assert (broken / "validation.json").is_file()


def test_fail_policy_passes_with_warnings_only(tmp_path: Path) -> None:
    write_image(tmp_path / "src" / "p.jpg", fmt="PNG")
    root = make_dataset(tmp_path, [rec("p", "p.jpg", label=0)])
    assert validate(root, on_error="fail").counts() == {"extension_mismatch": 1}


def test_skip_in_place_leaves_out_exactly_the_bad_ones(broken: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path / "src")
    original = (broken / "manifest.jsonl").read_bytes()
    report = validate(broken, on_error="skip")
    left = {x["id"]: x["reasons"] for x in report.left_out}
    assert left == {
        "trunc": ["image_truncated"],
        "corrupt": [report.examples("image_unreadable") and "image_unreadable" or "image_corrupt"],
        "missing": ["image_missing"],
        "badlabel": ["label_out_of_range"],
    }
    assert (broken / "manifest.orig.jsonl").read_bytes() == original
    cleaned = Dataset.load(broken)
    assert [r.id for r in cleaned] == ["good", "png", "size"]
    assert [(r.width, r.height) for r in cleaned if r.id == "size"] == [(40, 30)]
    assert "left out 4 of 7" in cleaned.info.history[-1]
    assert report.summary["left_out"] == 4
    assert json.loads((broken / "validation.json").read_text())["left_out"] == report.left_out
    assert snapshot(tmp_path / "src") == before
    # a second run finds nothing more to drop and keeps the first backup
    validate(broken, on_error="skip")
    assert (broken / "manifest.orig.jsonl").read_bytes() == original


def test_skip_with_out_writes_a_new_dataset(broken: Path, tmp_path: Path) -> None:
    before = snapshot(tmp_path / "src")
    original = (broken / "manifest.jsonl").read_bytes()
    out = tmp_path / "clean"
    report = validate(broken, on_error="skip", out=out)
    assert report.written == out
    assert (broken / "manifest.jsonl").read_bytes() == original
    assert not (broken / "manifest.orig.jsonl").exists()
    ds = Dataset.load(out)
    assert [r.id for r in ds] == ["good", "png", "size"]
    assert all(ds.image_path(r).is_file() for r in ds)
    assert ds.info.derived_from == str(broken.resolve())
    assert (out / "validation.json").is_file()
    assert snapshot(tmp_path / "src") == before


def test_cli_report_prints_table_and_exits_zero(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(broken), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "image_truncated" in out and "severity" in out and "4 errors" in out
    assert "validation.json" in out


def test_cli_fail_exits_one(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(broken), "--on-error", "fail"]) == 1
    captured = capsys.readouterr()
    assert "image_missing" in captured.out
    assert "cvpipe validate: error:" in captured.err and "--on-error skip" in captured.err


def test_cli_skip_lists_left_out(
    broken: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "validate",
                str(broken),
                "--on-error",
                "skip",
                "--out",
                str(tmp_path / "c"),
                "--workers",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "left out 4 of 7 records" in out and "trunc" in out


def test_cli_out_without_skip_is_an_error(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(broken), "--out", "x"]) == ConfigError.exit_code
    assert "--on-error skip" in capsys.readouterr().err


def test_missing_dataset_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert "dataset directory not found" in capsys.readouterr().err
