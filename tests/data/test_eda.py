"""eda: numbers against hand-computed values, advice, duplicates, a self-contained HTML, the CLI."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from tests.conftest import write_image

from cvpipe.cli.main import main
from cvpipe.data.eda import eda, imbalance
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.data.validate import validate


def make_dataset(tmp_path: Path, records: list[Record], task: str, classes: list[str]) -> Path:
    root = tmp_path / "ds"
    info = DatasetInfo(name="t", task=task, classes=classes, image_root="../src")  # type: ignore[arg-type]
    Dataset(root, info, records).save()
    return root


@pytest.fixture
def classify_ds(tmp_path: Path) -> Path:
    """a: 7 images (5 train, 2 val), b: 2 (1 train, 1 val), c: 3 (2 train, 1 val); sizes per class differ."""
    records = []
    plan = [("a", 5, "train", (48, 32)), ("a", 2, "val", (48, 32)), ("b", 1, "train", (40, 40)),
            ("b", 1, "val", (40, 40)), ("c", 2, "train", (64, 32)), ("c", 1, "val", (64, 32))]  # fmt: skip
    classes = ["a", "b", "c"]
    k = 0
    for name, n, split, size in plan:
        for _ in range(n):
            write_image(tmp_path / "src" / f"{k}.jpg", size, seed=k)
            records.append(
                Record(f"i{k}", f"{k}.jpg", size[0], size[1], split, label=classes.index(name))
            )
            k += 1
    return make_dataset(tmp_path, records, "classify", classes)


@pytest.fixture
def detect_ds(tmp_path: Path) -> Path:
    """4 images 100x100: 0, 1, 3 and 1 boxes; areas 20x20 (small), 50x50 (medium), 100x100 (large)."""
    boxes = [
        [],
        [[0, 0, 20, 20]],
        [[0, 0, 20, 20], [10, 10, 60, 60], [0, 0, 100, 100]],
        [[5, 5, 55, 55]],
    ]
    labels = [[], [1], [0, 0, 1], [0]]
    records = []
    for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
        write_image(tmp_path / "src" / f"{i}.png", (100, 100), seed=i)
        records.append(Record(f"d{i}", f"{i}.png", 100, 100, None, boxes=b, labels=lab))
    return make_dataset(tmp_path, records, "detect", ["plane", "car"])


def test_classify_numbers_match_hand_counts(classify_ds: Path) -> None:
    s = eda(classify_ds, samples_per_class=2, html=False)
    assert s["class_distribution"]["all"] == {"a": 7, "b": 2, "c": 3}
    assert s["class_distribution"]["train"] == {"a": 5, "b": 1, "c": 2}
    assert s["class_distribution"]["val"] == {"a": 2, "b": 1, "c": 1}
    assert s["splits"] == {"train": 8, "val": 4}
    imb = s["imbalance"]
    assert (imb["ratio"], imb["max_class"], imb["min_class"]) == (3.5, "a", "b")
    assert s["sizes"]["per_class"]["c"]["width"]["median"] == 64
    assert s["sizes"]["per_class"]["b"]["height"]["max"] == 40
    assert s["files"]["extensions"] == {".jpg": 12} and s["files"]["formats"] == {"JPEG": 12}
    commands = [a["command"] for a in s["advice"]]
    assert any(c and "balance" in c and "undersample" in c for c in commands)
    assert any(c and "cvpipe split" in c for c in commands)  # no test split
    assert {k: len(v) for k, v in s["samples"].items()} == {"a": 2, "b": 2, "c": 2}
    on_disk = json.loads((classify_ds / "eda" / "eda.json").read_text())
    assert on_disk["imbalance"]["ratio"] == 3.5


def test_imbalance_advice_thresholds() -> None:
    assert imbalance({"a": 3, "b": 1}, "images")["advice"] is None
    assert "undersample" in imbalance({"a": 4, "b": 1}, "images")["advice"]
    assert "oversample" in imbalance({"a": 11, "b": 1}, "images")["advice"]
    empty = imbalance({"a": 5, "b": 0, "c": 1}, "images")
    assert empty["ratio"] == 5 and empty["empty_classes"] == ["b"]


def test_detect_box_statistics(detect_ds: Path) -> None:
    s = eda(detect_ds, samples_per_class=1, html=False)
    b = s["boxes"]
    assert b["boxes_per_image"] == {"0": 1, "1": 2, "2": 0, "3": 1}
    assert b["boxes"] == 5 and b["mean_boxes_per_image"] == 1.25
    assert b["coco_sizes"] == {"small": 2, "medium": 2, "large": 1}
    assert b["objects_per_class"] == {"plane": 3, "car": 2}
    assert b["images_per_class"] == {"plane": 2, "car": 2}
    assert b["relative_size"]["max"] == 1.0 and b["relative_size"]["min"] == 0.2
    assert s["imbalance"]["ratio"] == 1.5
    assert any("cvpipe split" in (a["command"] or "") for a in s["advice"])


def test_count_distribution(tmp_path: Path) -> None:
    records = []
    for i, c in enumerate([1, 1, 2, 3, 3, 3]):
        write_image(tmp_path / "src" / f"{i}.jpg", seed=i)
        records.append(Record(f"c{i}", f"{i}.jpg", 48, 32, "train", count=c))
    root = make_dataset(tmp_path, records, "count", ["1", "2", "3"])
    s = eda(root, samples_per_class=0, html=False)
    assert s["counts"] == {"distribution": {"1": 2, "2": 1, "3": 3}, "mean": round(13 / 6, 4)}
    assert s["samples"] == {}


def test_html_is_self_contained(detect_ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "report_dir"
    s = eda(detect_ds, out=out)
    html = (out / "report.html").read_text()
    assert s["outputs"]["html"] == str(out / "report.html")
    assert not re.search(r"https?://", html)
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:|#)""", html)
    assert "<script" not in html and "@import" not in html
    assert html.count("data:image/png;base64,") >= 8  # plots + one grid per class
    assert not (detect_ds / "eda").exists()


def test_samples_are_seeded(classify_ds: Path, tmp_path: Path) -> None:
    a = eda(classify_ds, out=tmp_path / "a", seed=3, samples_per_class=3, html=False)["samples"]
    b = eda(classify_ds, out=tmp_path / "b", seed=3, samples_per_class=3, html=False)["samples"]
    assert a == b
    assert not (tmp_path / "a" / "report.html").exists() and (tmp_path / "a" / "eda.json").is_file()


def test_duplicates_from_validation_or_hash(tmp_path: Path) -> None:
    write_image(tmp_path / "src" / "x.jpg", seed=1)
    shutil.copy(tmp_path / "src" / "x.jpg", tmp_path / "src" / "y.jpg")
    write_image(tmp_path / "src" / "z.jpg", seed=2)
    records = [
        Record("x", "x.jpg", 48, 32, "train", label=0),
        Record("y", "y.jpg", 48, 32, "test", label=0),
        Record("z", "z.jpg", 48, 32, "val", label=1),
    ]
    root = make_dataset(tmp_path, records, "classify", ["a", "b"])
    assert eda(root, samples_per_class=0, html=False)["duplicates"]["checked"] is False
    hashed = eda(root, samples_per_class=0, hash=True, html=False)["duplicates"]
    assert (hashed["source"], hashed["groups"], hashed["leaks"]) == ("hash", 1, 1)
    validate(root)
    s = eda(root, samples_per_class=0, html=False)
    assert s["duplicates"]["source"].endswith("validation.json")
    assert (s["duplicates"]["groups"], s["duplicates"]["leaks"]) == (1, 1)
    assert any(a["level"] == "error" and "leak" in a["text"] for a in s["advice"])


def test_cli_prints_summary_and_report_path(
    classify_ds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in (classify_ds.parent / "src").iterdir()}
    argv = ["eda", str(classify_ds), "--samples-per-class", "1", "--seed", "2", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "imbalance (max/min): 3.50" in out and "undersample" in out
    assert str(classify_ds / "eda" / "report.html") in out
    assert before == {p: p.read_bytes() for p in (classify_ds.parent / "src").iterdir()}
    assert main([*argv, "--no-html", "--out", str(classify_ds / "e2")]) == 0
    out = capsys.readouterr().out
    assert "report:" not in out and str(classify_ds / "e2" / "eda.json") in out


def test_cli_bad_option_is_a_config_error(
    classify_ds: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eda", str(classify_ds), "--samples-per-class", "-1"]) == 2
    assert "samples_per_class" in capsys.readouterr().err
