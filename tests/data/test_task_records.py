"""The data verbs ask the task (tasks/base.py, records section) instead of branching: a toy
task registered from a test (tests/tasks/has_object.py) is split, balanced, validated and
described by its own classes, and the strata of the built-in tasks say what they stratify."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tests.engine.tinydetect import make_detect_dataset  # noqa: E402
from tests.tasks import has_object  # noqa: E402, F401  (registers the task)

from cvpipe.data.balance import balance  # noqa: E402
from cvpipe.data.eda import eda  # noqa: E402
from cvpipe.data.manifest import Dataset, Record  # noqa: E402
from cvpipe.data.split import split  # noqa: E402
from cvpipe.data.strata import NO_CLASS  # noqa: E402
from cvpipe.data.validate import validate  # noqa: E402
from cvpipe.tasks import get_task  # noqa: E402


def _has_object(root: Path) -> Dataset:
    det = make_detect_dataset(root, splits={"train": 16}, empty_every=2)
    recs = [dataclasses.replace(r, split=None) for r in det.records]
    Dataset(root, det.info.model_copy(update={"task": "has_object"}), recs).save()
    return Dataset.load(root)


def test_a_plugged_in_task_goes_through_split_balance_validate_and_eda(tmp_path: Path) -> None:
    ds = _has_object(tmp_path / "ds")
    empty = sum(1 for r in ds.records if not r.boxes)
    assert 0 < empty < len(ds)

    res = split(ds.root, ratios="50/50", seed=0, test_per_class=1)
    assert res.classes == ["empty", "object"]
    assert res.counts["test"] == [1, 1]  # a fixed test size per output class
    assert sum(res.images.values()) == len(ds)

    out = balance(ds.root, out=tmp_path / "bal", strategy="undersample")
    assert out.classes == ["empty", "object"]
    assert out.after["train"][0] == out.after["train"][1] == min(out.before["train"])

    report = validate(ds.root, hash=False)
    assert report.summary["errors"] == 0

    stats = eda(ds.root, samples_per_class=0, html=False)
    assert stats["unit"] == "images" and stats["classes"] == ["empty", "object"]
    assert stats["class_distribution"]["all"] == {"empty": empty, "object": len(ds) - empty}
    assert "boxes" not in stats  # box statistics are detect's section, not every task's


def test_strata_of_the_builtin_tasks() -> None:
    boxes = [[0.0, 0.0, 4.0, 4.0]]
    a = Record("a", "a.jpg", 8, 8, boxes=boxes * 2, labels=[0, 1])
    b = Record("b", "b.jpg", 8, 8, boxes=boxes, labels=[0])
    c = Record("c", "c.jpg", 8, 8, boxes=[], labels=[])
    detect = get_task("detect").strata()
    assert detect.every_split and detect.name == "rarest_class+object_count"
    assert detect.image_keys([a, b, c], ["x", "y"]) == [1, 0, NO_CLASS]

    classify = get_task("classify").strata()
    recs = [Record(i, f"{i}.jpg", 8, 8, label=lab) for i, lab in (("p", 0), ("q", 1), ("r", 1))]
    assert classify.keys([recs, recs[:1]], ["x", "y"]) == [1, 0]  # the majority of a group
    assert not classify.every_split and classify.name == "class"
    assert get_task("count").strata().name == "count"
