"""``cvpipe export-data`` (and ``cvpipe import`` of what it writes) through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import write_image

from cvpipe.cli.main import main


def write_labelimg(src: Path) -> Path:
    write_image(src / "train" / "burger_1.jpg", (64, 48))
    write_image(src / "val" / "fries_1.jpg", (48, 64))
    (src / "train" / "burger_1.xml").write_text(
        "<annotation><filename>burger_1.jpg</filename><size><width>64</width><height>48</height></size>"
        "<object><name>burger</name><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>40</xmax><ymax>45</ymax></bndbox></object>"
        "</annotation>"
    )
    (src / "val" / "fries_1.xml").write_text(
        "<annotation><filename>fries_1.jpg</filename><size><width>48</width><height>64</height></size>"
        "<object><name>fries</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>"
        "</annotation>"
    )
    return src


def one_error_line(err: str, verb: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"cvpipe {verb}: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_import_export_import(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_labelimg(tmp_path / "labelimg")
    assert (
        main(["import", "voc", str(src), "--out", str(tmp_path / "ds"), "--no-progress", "-q"]) == 0
    )
    rc = main(
        [
            "export-data",
            str(tmp_path / "ds"),
            "--format",
            fmt,
            "--out",
            str(tmp_path / "e"),
            "--copy",
            "-q",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert f"exported as {fmt} to {tmp_path / 'e'}" in out and "train" in out and "val" in out
    assert (
        main(
            [
                "import",
                fmt,
                str(tmp_path / "e"),
                "--out",
                str(tmp_path / "back"),
                "-q",
                "--no-progress",
            ]
        )
        == 0
    )
    back = capsys.readouterr().out
    assert "2 images, task detect" in back and "burger" in back and "fries" in back


def test_coco_without_copy_says_where_images_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_labelimg(tmp_path / "labelimg")
    assert main(["import", "voc", str(src), "--out", str(tmp_path / "ds"), "-q"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "export-data",
                str(tmp_path / "ds"),
                "--format",
                "coco",
                "--out",
                str(tmp_path / "e"),
                "-q",
            ]
        )
        == 0
    )
    assert f"--images {src.resolve()}" in capsys.readouterr().out


def test_wrong_task_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "scenes" / "sea" / "a.jpg", (32, 32))
    write_image(tmp_path / "scenes" / "forest" / "b.jpg", (32, 32))
    assert (
        main(
            ["import", "imagefolder", str(tmp_path / "scenes"), "--out", str(tmp_path / "ds"), "-q"]
        )
        == 0
    )
    capsys.readouterr()
    rc = main(
        ["export-data", str(tmp_path / "ds"), "--format", "voc", "--out", str(tmp_path / "e")]
    )
    assert rc == 2
    line = one_error_line(capsys.readouterr().err, "export-data")
    assert "classify" in line and "imagefolder" in line
    assert not (tmp_path / "e").exists()


def test_missing_dataset_and_non_empty_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "export-data",
                str(tmp_path / "nope"),
                "--format",
                "coco",
                "--out",
                str(tmp_path / "e"),
            ]
        )
        == 2
    )
    assert "dataset directory not found" in one_error_line(capsys.readouterr().err, "export-data")
    src = write_labelimg(tmp_path / "labelimg")
    assert main(["import", "voc", str(src), "--out", str(tmp_path / "ds"), "-q"]) == 0
    capsys.readouterr()
    assert main(["export-data", str(tmp_path / "ds"), "--format", "yolo", "--out", str(src)]) == 2
    assert "not empty" in one_error_line(capsys.readouterr().err, "export-data")


def test_bad_flags_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export-data", str(tmp_path), "--format", "pascal", "--out", str(tmp_path / "e")])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "export-data",
                str(tmp_path),
                "--format",
                "voc",
                "--out",
                str(tmp_path / "e"),
                "--copy",
                "--link",
            ]
        )
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_import_errors_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_labelimg(tmp_path / "labelimg")
    (src / "train" / "broken.xml").write_text("<annotation>\n<object>\n</annotation>\n")
    rc = main(["import", "voc", str(src), "--out", str(tmp_path / "ds"), "--on-error", "fail"])
    assert rc == 2
    line = one_error_line(capsys.readouterr().err, "import")
    assert "broken.xml:3: invalid XML" in line and "--on-error skip" in line
    (tmp_path / "bad.json").write_text('{"images": [}')
    assert main(["import", "coco", str(tmp_path / "bad.json"), "--out", str(tmp_path / "ds2")]) == 2
    assert "bad.json: invalid JSON" in one_error_line(capsys.readouterr().err, "import")
    yolo = tmp_path / "yolo"
    write_image(yolo / "images" / "a.jpg", (32, 32))
    (yolo / "labels").mkdir()
    (yolo / "labels" / "a.txt").write_text("0 0.5 0.5 0.5\n")
    (yolo / "classes.txt").write_text("a\n")
    assert (
        main(["import", "yolo", str(yolo), "--out", str(tmp_path / "ds3"), "--on-error", "fail"])
        == 2
    )
    assert "a.txt:1: expected 5 fields" in one_error_line(capsys.readouterr().err, "import")


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export-data", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--format voc" in out and "--copy" in out and "--link" in out
