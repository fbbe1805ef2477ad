"""amazon-bin importer: metadata folders, file_list.json, counts, broken metadata, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import write_image

from cvpipe.cli.main import main
from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.data.importers.amazon_bin import as_count
from cvpipe.errors import ConfigError, DatasetError, DatasetFormatError


def item(asin: str, quantity: Any = 1, name: str = "thing") -> dict[str, Any]:
    return {
        "asin": asin,
        "name": name,
        "quantity": quantity,
        "height": {"unit": "IN", "value": 4.2},
        "length": {"unit": "IN", "value": 4.7},
        "width": {"unit": "IN", "value": 4.4},
        "weight": {"unit": "pounds", "value": 0.45},
    }


def write_meta(
    path: Path,
    count: Any,
    quantities: list[Any] | None = None,
    fname: str | None = "default",
    nested: bool = False,
) -> Path:
    """One metadata JSON; ``quantities`` default to ``count`` items of quantity 1."""
    quantities = [1] * count if quantities is None else quantities
    items = {f"B{i:09d}": item(f"B{i:09d}", q) for i, q in enumerate(quantities)}
    top: dict[str, Any] = {"BIN_FCSKU_DATA": items}
    extra: dict[str, Any] = {"EXPECTED_QUANTITY": count}
    if fname is not None:
        extra["image_fname"] = f"{path.stem}.jpg" if fname == "default" else fname
    (items if nested else top).update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(top, indent=4))
    return path


def make_abid(root: Path, counts: dict[str, int], size: tuple[int, int] = (48, 32)) -> Path:
    """``root/metadata/<id>.json`` + ``root/bin-images/<id>.jpg``; returns the metadata folder."""
    for i, (bin_id, count) in enumerate(counts.items()):
        write_meta(root / "metadata" / f"{bin_id}.json", count)
        write_image(root / "bin-images" / f"{bin_id}.jpg", size, seed=i)
    return root / "metadata"


def manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "import_report.json").read_text())


def problems_of(out: Path, kind: str) -> list[dict[str, Any]]:
    return [p for p in report(out)["problems"] if p["kind"] == kind]


# -- metadata folder -----------------------------------------------------------------------


def test_metadata_folder_counts_sizes_and_meta(tmp_path: Path) -> None:
    meta = make_abid(tmp_path / "abid", {"10": 3, "2": 1, "523": 2, "7": 5})
    write_image(tmp_path / "abid" / "bin-images" / "523.jpg", (64, 40))
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", meta, out)

    assert ds.task == "count"
    assert ds.classes == ["1", "2", "3", "4", "5"]
    recs = manifest(out)
    # natural order of names: 2, 7, 10, 523
    assert [r["id"] for r in recs] == ["2", "7", "10", "523"]
    assert [r["count"] for r in recs] == [1, 5, 3, 2]
    assert [r["file"] for r in recs] == ["2.jpg", "7.jpg", "10.jpg", "523.jpg"]
    assert (recs[0]["width"], recs[0]["height"]) == (48, 32)
    assert (recs[3]["width"], recs[3]["height"]) == (64, 40)
    assert all("label" not in r for r in recs)
    assert ds.class_counts() == [1, 1, 1, 0, 1]
    # images resolve from the dataset
    assert all(ds.image_path(r).is_file() for r in ds)

    m = recs[3]["meta"]
    assert m["expected_quantity"] == 2
    assert m["metadata"] == "523.json"
    assert len(m["items"]) == 2
    assert m["items"][0] == {
        "asin": "B000000000",
        "name": "thing",
        "quantity": 1,
        "height": 4.2,
        "height_unit": "IN",
        "length": 4.7,
        "length_unit": "IN",
        "width": 4.4,
        "width_unit": "IN",
        "weight": 0.45,
        "weight_unit": "pounds",
    }
    info = yaml.safe_load((out / "dataset.yaml").read_text())
    assert info["source"]["format"] == "amazon-bin"
    assert report(out)["problems"] == []


def test_folder_holding_metadata_subfolder(tmp_path: Path) -> None:
    make_abid(tmp_path / "abid", {"1": 1, "2": 2})
    (tmp_path / "abid" / "file_list.json").write_text(json.dumps({"1": ["metadata/1.json"]}))
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", tmp_path / "abid", out)
    assert [r.count for r in ds] == [1, 2]
    assert report(out)["problems"] == []


def test_nested_quantity_and_fname_as_in_seed_report(tmp_path: Path) -> None:
    write_meta(tmp_path / "metadata" / "523.json", 2, nested=True)
    write_image(tmp_path / "bin-images" / "523.jpg")
    ds = import_dataset("amazon-bin", tmp_path / "metadata", tmp_path / "ds")
    (rec,) = ds.records
    assert rec.count == 2
    assert [i["asin"] for i in rec.meta["items"]] == ["B000000000", "B000000001"]


def test_counts_range_filters_and_reports(tmp_path: Path) -> None:
    meta = make_abid(tmp_path, {"1": 0, "2": 0, "3": 1, "4": 6, "5": 5})
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", meta, out)
    assert [r.count for r in ds] == [1, 5]
    (p,) = problems_of(out, "count_filtered")
    assert p["action"] == "left out (outside --counts)"
    assert "3 bins" in p["message"] and "0: 2" in p["message"] and "6: 1" in p["message"]
    assert report(out)["summary"]["problems"] == {"count_filtered": 1}

    ds0 = import_dataset("amazon-bin", meta, tmp_path / "ds0", ImportOptions(counts="0-5"))
    assert ds0.classes == ["0", "1", "2", "3", "4", "5"]
    assert [r.count for r in ds0] == [0, 0, 1, 5]
    assert ds0.class_counts() == [2, 1, 0, 0, 0, 1]


def test_classify_task_labels_are_count_classes(tmp_path: Path) -> None:
    meta = make_abid(tmp_path, {"1": 3, "2": 1, "3": 5})
    ds = import_dataset(
        "amazon-bin", meta, tmp_path / "ds", ImportOptions(task="classify", counts="1-5")
    )
    assert ds.task == "classify"
    assert ds.classes == ["1", "2", "3", "4", "5"]
    assert [ds.classes[r.label] for r in ds] == ["3", "1", "5"]
    assert all(r.count is None for r in ds)


def test_images_option_and_fallback_to_stem(tmp_path: Path) -> None:
    write_meta(
        tmp_path / "m" / "100.json", 1, fname="other-name.jpg"
    )  # not present: falls back to 100.jpg
    write_meta(tmp_path / "m" / "101.json", 2, fname=None)
    write_image(tmp_path / "pics" / "100.jpg")
    write_image(tmp_path / "pics" / "101.jpg")
    out = tmp_path / "ds"
    ds = import_dataset(
        "amazon-bin", tmp_path / "m", out, ImportOptions(images=str(tmp_path / "pics"))
    )
    assert [r.file for r in ds] == ["100.jpg", "101.jpg"]
    assert ds.image_root.resolve() == (tmp_path / "pics").resolve()


def test_images_next_to_metadata_when_no_bin_images_folder(tmp_path: Path) -> None:
    write_meta(tmp_path / "flat" / "5.json", 1)
    write_image(tmp_path / "flat" / "5.jpg")
    ds = import_dataset("amazon-bin", tmp_path / "flat", tmp_path / "ds")
    assert [r.file for r in ds] == ["5.jpg"]


def test_single_metadata_file(tmp_path: Path) -> None:
    path = write_meta(tmp_path / "metadata" / "523.json", 2)
    write_image(tmp_path / "bin-images" / "523.jpg")
    ds = import_dataset("amazon-bin", path, tmp_path / "ds")
    assert [(r.id, r.count) for r in ds] == [("523", 2)]


def test_classes_option_is_refused(tmp_path: Path) -> None:
    meta = make_abid(tmp_path, {"1": 1})
    with pytest.raises(ConfigError, match="--counts"):
        import_dataset("amazon-bin", meta, tmp_path / "ds", ImportOptions(classes="1,2"))


def test_bad_counts_option(tmp_path: Path) -> None:
    meta = make_abid(tmp_path, {"1": 1})
    with pytest.raises(ConfigError, match="counts '5-1'"):
        import_dataset("amazon-bin", meta, tmp_path / "ds", ImportOptions(counts="5-1"))


def test_missing_images_folder_and_empty_source(tmp_path: Path) -> None:
    meta = make_abid(tmp_path, {"1": 1})
    with pytest.raises(DatasetError, match="--images folder not found"):
        import_dataset(
            "amazon-bin", meta, tmp_path / "ds", ImportOptions(images=str(tmp_path / "nope"))
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no metadata JSON files"):
        import_dataset("amazon-bin", tmp_path / "empty", tmp_path / "ds")


# -- file_list.json ------------------------------------------------------------------------


def test_file_list_resolves_prefixed_bare_and_relative_entries(tmp_path: Path) -> None:
    root = tmp_path / "abid"
    make_abid(root, {"100": 1, "101": 1, "102": 2, "103": 3, "104": 6})
    file_list = {
        "1": ["data/metadata/100.json", "101"],
        "2": ["metadata/102.json"],
        "3": ["s3://aft-vbi-pds/metadata/103.json"],
        "6": ["metadata/104.json", "metadata/does-not-matter.json"],
    }
    (root / "file_list.json").write_text(json.dumps(file_list))
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", root / "file_list.json", out)
    assert [(r.id, r.count) for r in ds] == [("100", 1), ("101", 1), ("102", 2), ("103", 3)]
    assert [r.meta["metadata"] for r in ds] == [f"metadata/{i}.json" for i in (100, 101, 102, 103)]
    assert ds.records[0].file == "100.jpg"
    (p,) = problems_of(out, "count_filtered")
    assert "2 bins" in p["message"] and "6: 2" in p["message"]  # filtered by the key, unread


def test_file_list_metadata_next_to_images_option(tmp_path: Path) -> None:
    make_abid(tmp_path / "abid", {"7": 2})
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "file_list.json").write_text(json.dumps({"2": ["metadata/7.json"]}))
    ds = import_dataset(
        "amazon-bin",
        lists / "file_list.json",
        tmp_path / "ds",
        ImportOptions(images=str(tmp_path / "abid" / "bin-images")),
    )
    assert [(r.id, r.count, r.file) for r in ds] == [("7", 2, "7.jpg")]


def test_file_list_without_metadata_uses_listed_count(tmp_path: Path) -> None:
    # the Udacity workflow: file_list.json + downloaded bin images, no metadata folder
    write_image(tmp_path / "bin-images" / "100313.jpg")
    write_image(tmp_path / "bin-images" / "200.jpg")
    (tmp_path / "file_list.json").write_text(
        json.dumps({"1": ["metadata/100313.json"], "4": ["metadata/200.json", "metadata/999.json"]})
    )
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", tmp_path / "file_list.json", out)
    assert [(r.id, r.count) for r in ds] == [("100313", 1), ("200", 4)]
    assert ds.records[0].meta == {"expected_quantity": 1}
    missing = problems_of(out, "metadata_missing")
    assert len(missing) == 2
    summary = next(p for p in missing if "2 listed bins" in p["message"])
    assert summary["action"] == "imported with the count they are listed under"
    unresolved = next(p for p in missing if "999" in p["message"])
    assert unresolved["field"] == "4[1] 'metadata/999.json'"
    assert unresolved["file"] == str(tmp_path / "file_list.json")


def test_file_list_count_mismatch_and_duplicates(tmp_path: Path) -> None:
    make_abid(tmp_path, {"1": 3, "2": 1})
    (tmp_path / "file_list.json").write_text(
        json.dumps({"2": ["metadata/1.json"], "1": ["metadata/2.json", "2"]})
    )
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", tmp_path / "file_list.json", out)
    assert sorted((r.id, r.count) for r in ds) == [("1", 3), ("2", 1)]
    (mm,) = problems_of(out, "count_mismatch")
    assert mm["file"].endswith("1.json") and mm["field"] == "EXPECTED_QUANTITY"
    assert "lists this bin under 2" in mm["message"]
    (dup,) = problems_of(out, "duplicate")
    assert "'2'" in dup["message"]


def test_bad_file_list(tmp_path: Path) -> None:
    bad = tmp_path / "file_list.json"
    bad.write_text('{"1": ["a.json",\n  ]')
    with pytest.raises(DatasetFormatError, match=r"file_list.json:2: invalid JSON"):
        import_dataset("amazon-bin", bad, tmp_path / "ds")
    bad.write_text(json.dumps(["a.json"]))
    with pytest.raises(DatasetFormatError, match="not a file list"):
        import_dataset("amazon-bin", bad, tmp_path / "ds")
    make_abid(tmp_path, {"1": 1})
    bad.write_text(json.dumps({"one": ["metadata/1.json"], "1": ["metadata/1.json"]}))
    out = tmp_path / "ds"
    import_dataset("amazon-bin", bad, out)
    (p,) = problems_of(out, "bad_file_list")
    assert p["field"] == "one"


# -- broken metadata -----------------------------------------------------------------------


def make_broken(meta: Path, images: Path) -> None:
    write_meta(meta / "1.json", 2)
    (meta / "2.json").write_text('{\n  "BIN_FCSKU_DATA": {},\n  "EXPECTED_QUANTITY": 2,,\n}')
    (meta / "3.json").write_text(json.dumps({"BIN_FCSKU_DATA": {}, "image_fname": "3.jpg"}))
    write_meta(meta / "4.json", "two", quantities=[1, 1])
    write_meta(meta / "5.json", 2, quantities=[1, 2])  # quantity_mismatch, kept
    write_meta(meta / "6.json", 2, quantities=[1, "one"])  # bad item quantity, kept
    write_meta(meta / "7.json", 1)  # image missing
    write_meta(meta / "8.json", 2.5, quantities=[1, 1])
    (meta / "9.json").write_text("[1, 2]")
    for i in (1, 2, 3, 4, 5, 6, 8, 9):
        write_image(images / f"{i}.jpg", seed=i)


def test_broken_metadata_each_a_located_problem(tmp_path: Path) -> None:
    meta, images = tmp_path / "metadata", tmp_path / "bin-images"
    make_broken(meta, images)
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", meta, out)
    assert [r.id for r in ds] == ["1", "5", "6"]
    assert [r.count for r in ds] == [2, 2, 2]

    probs = {(p["kind"], Path(p["file"]).name): p for p in report(out)["problems"]}
    bad_json = probs[("bad_json", "2.json")]
    assert bad_json["line"] == 3 and "column" in bad_json["message"]
    assert probs[("missing_quantity", "3.json")]["field"] == "EXPECTED_QUANTITY"
    assert "'two'" in probs[("bad_quantity", "4.json")]["message"]
    assert probs[("bad_quantity", "8.json")]["field"] == "EXPECTED_QUANTITY"
    mismatch = probs[("quantity_mismatch", "5.json")]
    assert "sum to 3" in mismatch["message"] and mismatch["action"] == "kept EXPECTED_QUANTITY"
    assert probs[("bad_item_quantity", "6.json")]["field"] == "BIN_FCSKU_DATA.B000000001.quantity"
    missing = probs[("image_missing", "7.json")]
    assert missing["field"] == "image_fname" and "'7.jpg'" in missing["message"]
    assert ("bad_metadata", "9.json") in probs
    assert ("quantity_mismatch", "6.json") not in probs  # sum unknown: not compared
    assert ds.records[2].meta["items"][1]["quantity"] is None
    assert report(out)["summary"]["images"] == 3


def test_unreadable_image_is_skipped(tmp_path: Path) -> None:
    meta = make_abid(tmp_path, {"1": 1, "2": 2})
    (tmp_path / "bin-images" / "2.jpg").write_bytes(b"not a jpeg at all")
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", meta, out)
    assert [r.id for r in ds] == ["1"]
    (p,) = problems_of(out, "image_unreadable")
    assert p["file"].endswith("2.jpg") and "2.json" in p["message"]


@pytest.mark.parametrize(
    ("name", "content", "located"),
    [
        ("2.json", '{\n  "EXPECTED_QUANTITY": ,\n}', r"2\.json:2: invalid JSON"),
        (
            "2.json",
            json.dumps({"BIN_FCSKU_DATA": {}}),
            r"2\.json \[EXPECTED_QUANTITY\]: no EXPECTED_QUANTITY",
        ),
    ],
)
def test_on_error_fail_raises_located(
    tmp_path: Path, name: str, content: str, located: str
) -> None:
    meta = make_abid(tmp_path, {"1": 1})
    (meta / name).write_text(content)
    with pytest.raises(DatasetFormatError, match=located) as exc:
        import_dataset("amazon-bin", meta, tmp_path / "ds", ImportOptions(on_error="fail"))
    assert exc.value.path == str(meta / name)


def test_on_error_fail_keeps_non_fatal_problems(tmp_path: Path) -> None:
    write_meta(tmp_path / "metadata" / "1.json", 2, quantities=[1, 2])
    write_image(tmp_path / "bin-images" / "1.jpg")
    out = tmp_path / "ds"
    ds = import_dataset("amazon-bin", tmp_path / "metadata", out, ImportOptions(on_error="fail"))
    assert len(ds) == 1
    assert [p["kind"] for p in report(out)["problems"]] == ["quantity_mismatch"]


def test_nothing_importable(tmp_path: Path) -> None:
    write_meta(tmp_path / "metadata" / "1.json", 9)
    with pytest.raises(DatasetError, match="no usable images"):
        import_dataset("amazon-bin", tmp_path / "metadata", tmp_path / "ds")


def test_input_files_untouched(tmp_path: Path) -> None:
    meta = make_abid(tmp_path, {"1": 1, "2": 2})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    import_dataset("amazon-bin", meta, tmp_path / "ds")
    assert {p: p.read_bytes() for p in before} == before


def test_as_count() -> None:
    assert [as_count(v) for v in (0, 3, 3.0, -1, 2.5, "3", None, True)] == [
        0,
        3,
        3,
        None,
        None,
        None,
        None,
        None,
    ]


# -- command line --------------------------------------------------------------------------


def test_cli_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = make_abid(tmp_path / "abid", {"1": 1, "2": 2, "3": 0})
    out = tmp_path / "bins"
    rc = main(
        ["import", "amazon-bin", str(meta), "--out", str(out), "--counts", "0-5", "--no-progress"]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "bins: 3 images, task count" in captured.out
    assert manifest(out)[2]["count"] == 0


def test_cli_error_is_one_located_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = make_abid(tmp_path, {"1": 1})
    (meta / "2.json").write_text("{oops")
    rc = main(
        [
            "import",
            "amazon-bin",
            str(meta),
            "--out",
            str(tmp_path / "ds"),
            "--on-error",
            "fail",
            "--no-progress",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("cvpipe import: error: ")
    assert f"{meta / '2.json'}:1: invalid JSON" in err
    assert "Traceback" not in err
