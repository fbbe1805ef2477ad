"""openimages importer: box CSV, descriptions, class filter, grouping, broken rows, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import write_image

from cvpipe.cli.main import main
from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.data.importers.openimages import read_descriptions
from cvpipe.data.problems import ProblemLog
from cvpipe.errors import ConfigError, DatasetFormatError

HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
PLANE, PERSON, CAR = "/m/0cmf2", "/m/01g317", "/m/0k4j"
SIZES = {"aaa": (64, 48), "bbb": (40, 32), "ccc": (50, 50)}


def row(
    iid: str,
    mid: str,
    box: tuple[float, float, float, float],
    conf: Any = 1,
    flags: str = "0,1,0,0,0",
) -> str:
    xmin, xmax, ymin, ymax = box
    return f"{iid},xclick,{mid},{conf},{xmin},{xmax},{ymin},{ymax},{flags}"


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def make_oi(
    root: Path, rows: list[str] | None = None, images: dict[str, tuple[int, int]] | None = None
) -> Path:
    """``root/boxes.csv`` + ``root/images/<id>.jpg`` + descriptions (no header, like the official file)."""
    rows = (
        rows
        if rows is not None
        else [
            row("aaa", PLANE, (0.25, 0.75, 0.5, 1.0), flags="1,0,0,0,-1"),
            row("aaa", PERSON, (0.0, 0.5, 0.0, 0.25)),
            row("bbb", PERSON, (0.1, 0.6, 0.25, 0.75)),
            row("ccc", PLANE, (0.2, 0.4, 0.2, 0.8), flags="0,0,1,0,1"),
        ]
    )
    for i, (iid, size) in enumerate((images or SIZES).items()):
        write_image(root / "images" / f"{iid}.jpg", size, seed=i)
    (root / "classes.csv").write_text(f"{PLANE},Airplane\n{PERSON},Person\n{CAR},Car\n")
    return write_csv(root / "boxes.csv", rows)


def manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "import_report.json").read_text())


def problems_of(out: Path, kind: str) -> list[dict[str, Any]]:
    return [p for p in report(out)["problems"] if p["kind"] == kind]


def test_boxes_in_pixels_with_descriptions(tmp_path: Path) -> None:
    csv_path = make_oi(tmp_path / "oi")
    out = tmp_path / "ds"
    ds = import_dataset(
        "openimages",
        csv_path,
        out,
        ImportOptions(descriptions=str(tmp_path / "oi" / "classes.csv")),
    )
    assert ds.task == "detect"
    assert ds.classes == ["Airplane", "Person"]  # sorted names seen
    recs = manifest(out)
    assert [r["id"] for r in recs] == ["aaa", "bbb", "ccc"]
    assert [r["file"] for r in recs] == ["aaa.jpg", "bbb.jpg", "ccc.jpg"]
    a, b, c = recs
    assert (a["width"], a["height"]) == (64, 48)
    # aaa is 64x48: plane 0.25..0.75 x 0.5..1.0, person 0..0.5 x 0..0.25
    assert a["boxes"] == [[16.0, 24.0, 48.0, 48.0], [0.0, 0.0, 32.0, 12.0]]
    assert a["labels"] == [0, 1]
    # bbb is 40x32: 0.1..0.6 x 0.25..0.75
    assert b["boxes"] == [[4.0, 8.0, 24.0, 24.0]] and b["labels"] == [1]
    # ccc is 50x50: 0.2..0.4 x 0.2..0.8
    assert c["boxes"] == [[10.0, 10.0, 20.0, 40.0]]
    assert a["meta"]["box_meta"] == [
        {"occluded": 1, "truncated": 0, "group_of": 0, "depiction": 0, "inside": -1},
        {"occluded": 0, "truncated": 1, "group_of": 0, "depiction": 0, "inside": 0},
    ]
    assert a["meta"]["mids"] == {"Airplane": PLANE, "Person": PERSON}
    assert c["meta"]["box_meta"][0]["group_of"] == 1
    assert ds.class_counts() == [2, 2]
    assert report(out)["problems"] == []
    assert report(out)["summary"]["boxes"] == 4


def test_without_descriptions_mids_are_names(tmp_path: Path) -> None:
    csv_path = make_oi(tmp_path)
    ds = import_dataset("openimages", csv_path, tmp_path / "ds")
    assert ds.classes == [PERSON, PLANE]
    assert ds.records[2].meta["mids"] == {PLANE: PLANE}


def test_class_filter_by_name_reports_filtered(tmp_path: Path) -> None:
    csv_path = make_oi(tmp_path)
    out = tmp_path / "ds"
    opts = ImportOptions(classes="Airplane", descriptions=str(tmp_path / "classes.csv"))
    ds = import_dataset("openimages", csv_path, out, opts)
    assert ds.classes == ["Airplane"]
    assert [r.id for r in ds] == ["aaa", "ccc"]  # bbb has only a person
    assert ds.records[0].boxes == [[16.0, 24.0, 48.0, 48.0]]
    assert ds.records[0].meta["box_meta"] == [
        {"occluded": 1, "truncated": 0, "group_of": 0, "depiction": 0, "inside": -1}
    ]
    (p,) = problems_of(out, "class_filtered")
    assert p["action"] == "left out (not in --classes)"
    assert p["message"].startswith("2 rows of other classes (1 images")


def test_class_filter_by_mid_and_order(tmp_path: Path) -> None:
    csv_path = make_oi(tmp_path)
    ds = import_dataset("openimages", csv_path, tmp_path / "ds", ImportOptions(classes=[PLANE]))
    assert ds.classes == [PLANE]
    assert len(ds) == 2
    opts = ImportOptions(classes="Person,/m/0cmf2", descriptions=str(tmp_path / "classes.csv"))
    ds2 = import_dataset("openimages", csv_path, tmp_path / "ds2", opts)
    assert ds2.classes == ["Person", "Airplane"]
    assert ds2.records[0].labels == [1, 0]


def test_selected_class_without_boxes_is_reported(tmp_path: Path) -> None:
    csv_path = make_oi(tmp_path)
    out = tmp_path / "ds"
    opts = ImportOptions(classes="Airplane,Car", descriptions=str(tmp_path / "classes.csv"))
    ds = import_dataset("openimages", csv_path, out, opts)
    assert ds.classes == ["Airplane", "Car"]
    (p,) = problems_of(out, "class_absent")
    assert "'Car'" in p["message"]


def test_unknown_class_lists_close_matches(tmp_path: Path) -> None:
    csv_path = make_oi(tmp_path)
    desc = str(tmp_path / "classes.csv")
    with pytest.raises(ConfigError, match="unknown class 'airplane'.*did you mean 'Airplane'"):
        import_dataset(
            "openimages",
            csv_path,
            tmp_path / "ds",
            ImportOptions(classes="airplane", descriptions=desc),
        )
    with pytest.raises(ConfigError, match="did you mean 'Airplane'"):
        import_dataset(
            "openimages",
            csv_path,
            tmp_path / "ds",
            ImportOptions(classes="Airplan", descriptions=desc),
        )
    with pytest.raises(ConfigError, match="not a MID.*--descriptions"):
        import_dataset("openimages", csv_path, tmp_path / "ds", ImportOptions(classes="Airplane"))


def test_descriptions_with_header_and_duplicate_names(tmp_path: Path) -> None:
    desc = tmp_path / "desc.csv"
    desc.write_text(
        'LabelName,DisplayName\n/m/01h44,Bat\n/m/0bt9lr,Dog\n/m/02h19r,Bat\n"/m/x1","Salt, pepper"\nbroken\n'
    )
    problems = ProblemLog()
    names = read_descriptions(desc, problems)
    assert names == {
        "/m/01h44": "Bat (/m/01h44)",
        "/m/0bt9lr": "Dog",
        "/m/02h19r": "Bat (/m/02h19r)",
        "/m/x1": "Salt, pepper",
    }
    assert [(p.kind, p.line) for p in problems.problems] == [("bad_description", 6)]


def test_low_confidence_rows_ignored(tmp_path: Path) -> None:
    rows = [
        row("aaa", PLANE, (0.25, 0.75, 0.5, 1.0)),
        row("aaa", PLANE, (0.0, 0.1, 0.0, 0.1), conf=0),  # human-verified negative
        row("bbb", PLANE, (0.1, 0.6, 0.25, 0.75), conf=0),
        row("ccc", PLANE, (0.2, 0.4, 0.2, 0.8), conf=0.7),
    ]
    out = tmp_path / "ds"
    ds = import_dataset("openimages", make_oi(tmp_path, rows), out)
    assert [(r.id, len(r.boxes or [])) for r in ds] == [("aaa", 1), ("ccc", 1)]
    (p,) = problems_of(out, "low_confidence")
    assert p["message"] == "2 rows with Confidence below 0.5"
    ds2 = import_dataset(
        "openimages", make_oi(tmp_path, rows), tmp_path / "ds2", ImportOptions(min_confidence=0.8)
    )
    assert [r.id for r in ds2] == ["aaa"]


def test_unsorted_rows_are_grouped(tmp_path: Path) -> None:
    rows = [
        row("ccc", PLANE, (0.2, 0.4, 0.2, 0.8)),
        row("aaa", PLANE, (0.25, 0.75, 0.5, 1.0)),
        row("bbb", PERSON, (0.1, 0.6, 0.25, 0.75)),
        row("aaa", PERSON, (0.0, 0.5, 0.0, 0.25)),
    ]
    ds = import_dataset("openimages", make_oi(tmp_path, rows), tmp_path / "ds")
    assert [r.id for r in ds] == ["aaa", "bbb", "ccc"]
    a = ds.records[0]
    assert a.boxes == [[16.0, 24.0, 48.0, 48.0], [0.0, 0.0, 32.0, 12.0]]
    assert [ds.classes[i] for i in a.labels or []] == [PLANE, PERSON]
    assert len(a.meta["box_meta"]) == 2


def test_minimal_columns_and_extra_columns(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "aaa.jpg", (64, 48))
    header = "XMin,ImageID,Extra,LabelName,XMax,YMin,YMax"
    csv_path = write_csv(tmp_path / "boxes.csv", ["0.25,aaa,zzz,/m/0cmf2,0.75,0.5,1.0"], header)
    ds = import_dataset("openimages", csv_path, tmp_path / "ds")
    (rec,) = ds.records
    assert rec.boxes == [[16.0, 24.0, 48.0, 48.0]]
    assert rec.meta["box_meta"] == [
        {"occluded": -1, "truncated": -1, "group_of": -1, "depiction": -1, "inside": -1}
    ]


def test_missing_required_column_names_it(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "aaa.jpg")
    csv_path = write_csv(
        tmp_path / "boxes.csv", ["aaa,/m/0cmf2,0.1,0.2,0.3"], "ImageID,LabelName,XMin,XMax,YMin"
    )
    with pytest.raises(
        DatasetFormatError,
        match=r"boxes.csv:1 \[YMax\]: missing required column 'YMax'; header found: ImageID,LabelName,XMin,XMax,YMin",
    ):
        import_dataset("openimages", csv_path, tmp_path / "ds")


def broken_rows() -> list[str]:
    return [
        row("aaa", PLANE, (0.25, 0.75, 0.5, 1.0)),  # line 2
        "aaa,xclick,/m/0cmf2,1,0.1,0.2",  # line 3: wrong field count
        row("bbb", PLANE, ("abc", 0.6, 0.25, 0.75)),  # type: ignore[arg-type]  # line 4: not a number
        row("ccc", PLANE, (0.6, 0.4, 0.2, 0.8)),  # line 5: XMin > XMax
        row("ddd", PLANE, (0.1, 0.4, 0.2, 0.8)),  # line 6: image missing
        row("eee", PLANE, (-0.5, 0.5, 0.5, 1.5)),  # line 7: outside, clipped by the session
        row("fff", PLANE, (0.1, 0.4, 0.2, 0.8), flags="0,x,0,0,0"),  # line 8: bad flag, kept
    ]


def test_broken_rows_are_located_problems(tmp_path: Path) -> None:
    images = {"aaa": (64, 48), "bbb": (40, 32), "ccc": (50, 50), "eee": (20, 10), "fff": (10, 10)}
    csv_path = make_oi(tmp_path, broken_rows(), images)
    out = tmp_path / "ds"
    ds = import_dataset("openimages", csv_path, out)
    assert [r.id for r in ds] == ["aaa", "eee", "fff"]
    assert ds.records[0].boxes == [[16.0, 24.0, 48.0, 48.0]]  # the malformed aaa row left out
    assert ds.records[1].boxes == [[0.0, 5.0, 10.0, 10.0]]  # [-10, 5, 10, 15] clipped to 20x10

    got = {(p["kind"], p.get("line"), p.get("field")) for p in report(out)["problems"]}
    assert ("bad_row", 3, None) in got
    assert ("bad_row", 4, "XMin") in got
    assert ("box_inverted", 5, "XMin") in got
    assert ("image_missing", 6, "ImageID") in got
    assert ("bad_flag", 8, "IsTruncated") in got
    (outside,) = problems_of(out, "box_outside")
    assert outside["file"] == f"{csv_path}:7"
    assert ds.records[2].meta["box_meta"][0]["truncated"] == -1
    assert all(
        p["file"] == str(csv_path) for p in report(out)["problems"] if p["kind"] != "box_outside"
    )


def test_on_error_fail_raises_with_path_and_line(tmp_path: Path) -> None:
    csv_path = make_oi(tmp_path, broken_rows())
    with pytest.raises(DatasetFormatError, match=r"boxes.csv:3: expected 13 fields") as exc:
        import_dataset("openimages", csv_path, tmp_path / "ds", ImportOptions(on_error="fail"))
    assert exc.value.path == str(csv_path)
    assert exc.value.line == 3


def test_fiftyone_layout_finds_images(tmp_path: Path) -> None:
    split = tmp_path / "open-images-v7" / "train"
    write_image(split / "data" / "aaa.jpg", (64, 48))
    csv_path = write_csv(
        split / "labels" / "detections.csv", [row("aaa", PLANE, (0.25, 0.75, 0.5, 1.0))]
    )
    ds = import_dataset("openimages", csv_path, tmp_path / "ds")
    assert ds.image_path(ds.records[0]).resolve() == (split / "data" / "aaa.jpg").resolve()


def test_images_option(tmp_path: Path) -> None:
    write_image(tmp_path / "pics" / "aaa.jpg", (64, 48))
    csv_path = write_csv(
        tmp_path / "ann" / "boxes.csv", [row("aaa", PLANE, (0.25, 0.75, 0.5, 1.0))]
    )
    ds = import_dataset(
        "openimages", csv_path, tmp_path / "ds", ImportOptions(images=str(tmp_path / "pics"))
    )
    assert ds.records[0].file == "aaa.jpg"


def test_cli_import_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = make_oi(tmp_path)
    out = tmp_path / "planes"
    args = ["import", "openimages", str(csv_path), "--out", str(out), "--no-progress"]
    rc = main([*args, "--descriptions", str(tmp_path / "classes.csv"), "--classes", "Airplane"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "planes: 2 images, task detect" in captured.out
    assert "class_filtered" in captured.out

    bad = write_csv(tmp_path / "bad.csv", ["aaa,x"], "ImageID,LabelName")
    rc = main(["import", "openimages", str(bad), "--out", str(tmp_path / "ds2"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"cvpipe import: error: {bad}:1 [XMin]: missing required column 'XMin'")


def test_quoted_fields_crlf_and_mid_prefixes(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "aaa.jpg", (64, 48))
    write_image(tmp_path / "images" / "bbb.jpg", (40, 32))
    header = "LabelName,ImageID,XMin,XMax,YMin,YMax"
    lines = [
        header,
        '"/m/0cmf2","aaa","0.25","0.75","0.5","1.0"',
        "/m/0cmf2x,aaa,0.0,0.5,0.0,0.25",  # another class whose MID starts like the selected one
        "/m/0cmf2,bbb,0.1,0.6,0.25,0.75",
        '/m/01g317,"ccc",0.1,0.6,0.25,0.75',
    ]
    csv_path = tmp_path / "boxes.csv"
    csv_path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    out = tmp_path / "ds"
    ds = import_dataset("openimages", csv_path, out, ImportOptions(classes=[PLANE]))
    assert [(r.id, r.boxes) for r in ds] == [
        ("aaa", [[16.0, 24.0, 48.0, 48.0]]),
        ("bbb", [[4.0, 8.0, 24.0, 24.0]]),
    ]
    (p,) = problems_of(out, "class_filtered")
    assert p["message"].startswith("2 rows of other classes (1 images")
