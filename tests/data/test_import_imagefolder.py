"""imagefolder importer: flat and split layouts, class filter, counts, broken files, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import write_image, write_truncated_jpeg

from cvpipe.cli.main import main
from cvpipe.data.importers import ImportOptions, import_dataset
from cvpipe.errors import ConfigError, DatasetError, DatasetFormatError


def make_tree(root: Path, layout: dict[str, int], size: tuple[int, int] = (48, 32)) -> Path:
    """``root/<folder>/<i>.jpg`` with ``layout[folder]`` images each (folder may hold a split)."""
    for folder, n in layout.items():
        for i in range(n):
            write_image(root / folder / f"{i}.jpg", size, seed=i)
    return root


def manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def report(out: Path) -> dict[str, Any]:
    return json.loads((out / "import_report.json").read_text())


def test_flat_layout(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "scenes", {"street": 2, "forest": 3, "glacier": 1})
    write_image(src / "forest" / "big.png", (64, 40), fmt="PNG")
    out = tmp_path / "ds"
    ds = import_dataset("imagefolder", src, out)
    assert ds.task == "classify"
    assert ds.classes == ["forest", "glacier", "street"]  # sorted like torchvision
    recs = manifest(out)
    assert len(recs) == 7
    assert [r["id"] for r in recs[:4]] == ["forest/0", "forest/1", "forest/2", "forest/big"]
    assert recs[3]["file"] == "forest/big.png"
    assert (recs[3]["width"], recs[3]["height"]) == (64, 40)
    assert (recs[0]["width"], recs[0]["height"]) == (48, 32)
    assert all(r["split"] is None for r in recs)
    assert ds.class_counts() == [4, 1, 2]
    assert all(ds.image_path(r).is_file() for r in ds)
    info = yaml.safe_load((out / "dataset.yaml").read_text())
    assert info["classes"] == ["forest", "glacier", "street"]
    assert info["source"]["format"] == "imagefolder"
    assert report(out) == {
        "summary": {"images": 7, "splits": {"None": 7}, "problems": {}},
        "problems": [],
    }


def test_split_layout(tmp_path: Path) -> None:
    src = make_tree(
        tmp_path / "intel",
        {"train/cat": 2, "train/dog": 1, "valid/cat": 1, "test/dog": 1, "test/owl": 1},
    )
    ds = import_dataset("imagefolder", src, tmp_path / "ds")
    assert ds.classes == ["cat", "dog", "owl"]  # union over splits
    assert ds.splits() == {"train": 3, "val": 1, "test": 2}
    by_id = {r.id: r for r in ds}
    assert by_id["valid/cat/0"].split == "val"
    assert ds.classes[by_id["test/owl/0"].label] == "owl"  # type: ignore[index]
    assert ds.class_counts("train") == [2, 1, 0]


def test_mixed_folders_are_not_a_split_layout(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "s", {"train": 1, "cat": 1})
    ds = import_dataset("imagefolder", src, tmp_path / "ds")
    assert ds.classes == ["cat", "train"]
    assert ds.splits() == {None: 2}


def test_classes_filter_and_order(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "s", {"street": 1, "forest": 2, "glacier": 1})
    out = tmp_path / "ds"
    ds = import_dataset("imagefolder", src, out, ImportOptions(classes="street,forest"))
    assert ds.classes == ["street", "forest"]
    assert ds.class_counts() == [1, 2]
    assert {ds.classes[r.label] for r in ds} == {"street", "forest"}  # type: ignore[index]
    (p,) = report(out)["problems"]
    assert p["kind"] == "class_not_selected"
    assert p["file"] == str(src / "glacier")
    assert p["action"] == "left out"


def test_count_task(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "bins", {"1": 2, "3": 1, "0": 1, "7": 1})
    out = tmp_path / "ds"
    ds = import_dataset("imagefolder", src, out, ImportOptions(task="count"))
    assert ds.task == "count"
    assert ds.classes == ["1", "2", "3", "4", "5"]
    assert [r.count for r in ds] == [1, 1, 3]
    assert all(r.label is None for r in ds)
    kinds = sorted((p["kind"], Path(p["file"]).name) for p in report(out)["problems"])
    assert kinds == [("count_out_of_range", "0"), ("count_out_of_range", "7")]

    ds0 = import_dataset(
        "imagefolder", src, tmp_path / "ds0", ImportOptions(task="count", counts="0-7")
    )
    assert [r.count for r in ds0] == [0, 1, 1, 3, 7]


def test_count_task_non_integer_folder(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "bins", {"1": 1, "many": 1})
    out = tmp_path / "ds"
    ds = import_dataset("imagefolder", src, out, ImportOptions(task="count"))
    assert [r.count for r in ds] == [1]
    (p,) = report(out)["problems"]
    assert p["kind"] == "class_not_a_count" and p["file"] == str(src / "many")
    with pytest.raises(DatasetFormatError, match=r"many: folder 'many' is not an integer count"):
        import_dataset(
            "imagefolder", src, tmp_path / "ds2", ImportOptions(task="count", on_error="fail")
        )


def test_non_image_and_hidden_files(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "s", {"cat": 1})
    (src / "cat" / "notes.txt").write_text("hello")
    (src / "cat" / ".DS_Store").write_bytes(b"\0")
    out = tmp_path / "ds"
    ds = import_dataset("imagefolder", src, out)
    assert len(ds) == 1
    (p,) = report(out)["problems"]
    assert (p["kind"], p["file"], p["action"]) == (
        "not_an_image",
        str(src / "cat" / "notes.txt"),
        "skipped file",
    )
    assert "'.txt'" in p["message"]


def test_unreadable_and_mislabelled_images(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "s", {"cat": 2})
    (src / "cat" / "broken.jpg").write_bytes(b"this is not an image")
    (src / "cat" / "empty.jpg").write_bytes(b"")
    write_image(src / "cat" / "really_png.jpg", fmt="PNG")
    write_truncated_jpeg(src / "cat" / "truncated.jpg")  # header intact: sizes still readable
    out = tmp_path / "ds"
    ds = import_dataset("imagefolder", src, out)
    assert sorted(r.id for r in ds) == ["cat/0", "cat/1", "cat/really_png", "cat/truncated"]
    probs = {(p["kind"], Path(p["file"]).name) for p in report(out)["problems"]}
    assert probs == {
        ("image_unreadable", "broken.jpg"),
        ("image_empty", "empty.jpg"),
        ("extension_mismatch", "really_png.jpg"),
    }
    assert report(out)["summary"]["problems"] == {
        "extension_mismatch": 1,
        "image_empty": 1,
        "image_unreadable": 1,
    }


def test_on_error_fail_names_the_file(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "s", {"cat": 1})
    bad = src / "cat" / "broken.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(DatasetFormatError) as exc:
        import_dataset("imagefolder", src, tmp_path / "ds", ImportOptions(on_error="fail"))
    msg = str(exc.value)
    assert msg.startswith(f"{bad}: not an image")
    assert "--on-error skip" in msg
    assert exc.value.path == str(bad)
    assert not (tmp_path / "ds" / "manifest.jsonl").exists()


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="source not found"):
        import_dataset("imagefolder", tmp_path / "nope", tmp_path / "ds")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        import_dataset("imagefolder", tmp_path / "empty", tmp_path / "ds")
    (tmp_path / "nothing" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no usable images"):
        import_dataset("imagefolder", tmp_path / "nothing", tmp_path / "ds")
    src = make_tree(tmp_path / "s", {"cat": 1})
    with pytest.raises(ConfigError, match="task 'detect' is not available"):
        import_dataset("imagefolder", src, tmp_path / "ds", ImportOptions(task="detect"))


def test_copy_images(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "s", {"cat": 1, "dog": 1})
    out = tmp_path / "ds"
    ds = import_dataset("imagefolder", src, out, ImportOptions(copy_images=True))
    assert ds.info.image_root == "images"
    assert (out / "images" / "cat" / "0.jpg").read_bytes() == (src / "cat" / "0.jpg").read_bytes()


def test_cli_import_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_tree(tmp_path / "scenes", {"street": 2, "forest": 1})
    out = tmp_path / "scenes_ds"
    assert main(["import", "imagefolder", str(src), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "scenes_ds: 3 images, task classify" in text
    assert "street" in text and f"dataset written to {out}" in text

    (src / "street" / "bad.jpg").write_bytes(b"nope")
    rc = main(
        [
            "import",
            "imagefolder",
            str(src),
            "--out",
            str(tmp_path / "x"),
            "--on-error",
            "fail",
            "--no-progress",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"cvpipe import: error: {src / 'street' / 'bad.jpg'}: not an image")


def test_run_import_summary_counts_match_the_manifest(tmp_path: Path) -> None:
    from cvpipe.data.importers import run_import
    from cvpipe.data.manifest import Dataset

    for i, cls in enumerate(["a", "a", "b"]):
        write_image(tmp_path / "src" / cls / f"{i}.jpg")
    summary = run_import("imagefolder", tmp_path / "src", tmp_path / "ds")
    assert summary.info.classes == ["a", "b"]
    assert summary.class_counts == Dataset.load(tmp_path / "ds").class_counts() == [2, 1]


def test_run_import_summary_counts_objects_for_detection(tmp_path: Path) -> None:
    from cvpipe.data.importers import run_import

    src = tmp_path / "yolo"
    write_image(src / "images" / "a.jpg", (40, 40))
    write_image(src / "images" / "b.jpg", (40, 40))
    (src / "labels").mkdir()
    (src / "labels" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.2 0.2\n0 0.7 0.7 0.2 0.2\n"
    )
    (src / "labels" / "b.txt").write_text("")  # an image without objects
    (src / "classes.txt").write_text("cat\ndog\n")
    summary = run_import("yolo", src, tmp_path / "ds")
    assert summary.class_counts == [2, 1]
    assert summary.info.import_report["images"] == 2
