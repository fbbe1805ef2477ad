from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from cvpipe.cli.main import main
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.data.ratios import allocate, largest_remainder, parse_ratios
from cvpipe.data.split import split
from cvpipe.errors import ConfigError, DatasetError


def make_classify(
    root: Path, sizes: list[int], shuffle_seed: int | None = None, task: str = "classify"
) -> Path:
    classes = (
        [str(i + 1) for i in range(len(sizes))]
        if task == "count"
        else [f"c{i}" for i in range(len(sizes))]
    )
    recs = []
    for c, n in enumerate(sizes):
        for i in range(n):
            rec = Record(
                id=f"{classes[c]}_{i:04d}", file=f"{classes[c]}/{i:04d}.jpg", width=32, height=32
            )
            if task == "count":
                rec.count = c + 1
            else:
                rec.label = c
            recs.append(rec)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(recs)
    Dataset(root, DatasetInfo(name=root.name, task=task, classes=classes), recs).save()
    return root


def make_detect(root: Path, n: int = 120) -> Path:
    rng = random.Random(3)
    recs = []
    for i in range(n):
        k = rng.randrange(0, 5)
        labels = [rng.choices([0, 1, 2], weights=[70, 25, 5])[0] for _ in range(k)]
        recs.append(
            Record(
                id=f"im{i:04d}",
                file=f"im{i:04d}.jpg",
                width=64,
                height=64,
                boxes=[[1, 1, 9, 9]] * k,
                labels=labels,
            )
        )
    Dataset(root, DatasetInfo(name="d", task="detect", classes=["a", "b", "rare"]), recs).save()
    return root


def mapping(root: Path) -> dict[str, str | None]:
    return {r.id: r.split for r in Dataset.load(root).records}


# -- ratios -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("70/20/10", (0.7, 0.2, 0.1)),
        ("80/20", (0.8, 0.2)),
        ("0.8,0.2", (0.8, 0.2)),
        ("0.7, 0.2, 0.1", (0.7, 0.2, 0.1)),
    ],
)
def test_parse_ratios(text: str, expected: tuple[float, ...]) -> None:
    assert parse_ratios(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("80/30", "sum to 110"),
        ("0.5,0.2", "sum to 0.7"),
        ("a/b", "not numbers"),
        ("100", "1 part"),
        ("60/20/10/10", "4 part"),
        ("0/100", "train share"),
        ("110/-10", "negative"),
    ],
)
def test_parse_ratios_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_ratios(text)


def test_largest_remainder_and_allocate_totals() -> None:
    assert largest_remainder(10, (0.65, 0.25, 0.1)) == [7, 2, 1]
    sizes = [13, 17, 3, 29, 1, 2, 8]
    ratios = (0.7, 0.2, 0.1)
    alloc = allocate(sizes, ratios)
    for n, row in zip(sizes, alloc, strict=True):
        assert sum(row) == n
        if n <= 2:
            assert row == [n, 0, 0]  # tiny classes go to train
        else:
            assert all(abs(row[s] - n * ratios[s]) < 1 for s in range(3))
    big = sum(n for n in sizes if n > 2)
    totals = [sum(row[s] for row, n in zip(alloc, sizes, strict=True) if n > 2) for s in range(3)]
    assert totals == largest_remainder(big, ratios)


# -- reproducibility and stratification ---------------------------------------------------
def test_same_seed_same_split_independent_of_order(tmp_path: Path) -> None:
    a = make_classify(tmp_path / "a", [40, 25, 12])
    b = make_classify(tmp_path / "b", [40, 25, 12], shuffle_seed=7)
    c = make_classify(tmp_path / "c", [40, 25, 12])
    split(a, ratios="70/20/10", seed=5)
    split(b, ratios="70/20/10", seed=5)
    split(c, ratios="70/20/10", seed=6)
    assert mapping(a) == mapping(b)
    assert mapping(a) != mapping(c)
    assert [r.id for r in Dataset.load(b).records] != sorted(mapping(b))  # manifest order kept


def test_stratified_proportions_within_one(tmp_path: Path) -> None:
    sizes = [50, 31, 17, 9, 4]
    root = make_classify(tmp_path / "ds", sizes, task="count")
    res = split(root, ratios="70/20/10", seed=0)
    for c, n in enumerate(sizes):
        for s, r in zip(("train", "val", "test"), (0.7, 0.2, 0.1), strict=True):
            assert abs(res.counts[s][c] - n * r) < 1, (c, s)
    assert sum(res.images.values()) == sum(sizes)
    info = Dataset.load(root).info
    assert info.split == {
        "seed": 0,
        "ratios": {"train": 0.7, "val": 0.2, "test": 0.1},
        "test_per_class": None,
        "stratify": "count",
        "group_key": None,
        "kept_existing": False,
    }
    assert info.history[-1] == "split ratios=70/20/10 seed=0"


def test_tiny_classes_go_to_train(tmp_path: Path) -> None:
    root = make_classify(tmp_path / "ds", [30, 1, 2])
    res = split(root, ratios="60/20/20")
    assert [res.counts[s][1] for s in ("train", "val", "test")] == [1, 0, 0]
    assert [res.counts[s][2] for s in ("train", "val", "test")] == [2, 0, 0]


def test_two_way_split(tmp_path: Path) -> None:
    root = make_classify(tmp_path / "ds", [20, 10])
    res = split(root, ratios="0.8,0.2")
    assert res.images == {"train": 24, "val": 6}


def test_test_per_class_exact(tmp_path: Path) -> None:
    root = make_classify(tmp_path / "ds", [40, 25, 12], task="count")
    res = split(root, ratios="80/20", test_per_class=5, seed=1)
    assert res.counts["test"] == [5, 5, 5]
    for c, n in enumerate([35, 20, 7]):
        assert abs(res.counts["train"][c] - 0.8 * n) < 1
        assert res.counts["train"][c] + res.counts["val"][c] == n
    assert Dataset.load(root).info.split["test_per_class"] == 5  # type: ignore[index]


def test_test_per_class_too_few_names_class_and_fix(tmp_path: Path) -> None:
    root = make_classify(tmp_path / "ds", [40, 6], task="count")
    with pytest.raises(DatasetError, match=r"'2' has 6; use --test-per-class 5 or fewer"):
        split(root, ratios="80/20", test_per_class=6)
    with pytest.raises(ConfigError, match="train/val ratios only"):
        split(root, ratios="70/20/10", test_per_class=2)
    assert mapping(root) == dict.fromkeys(mapping(root))  # nothing written


# -- groups -------------------------------------------------------------------------------
def _with_groups(root: Path) -> Path:
    ds = Dataset.load(root)
    for i, r in enumerate(sorted(ds.records, key=lambda r: r.id)):
        r.meta["bin"] = f"bin{i // 3}"
        r.file = f"shot{i // 4}_{i % 4}.jpg"
    ds.save()
    return root


def test_group_key_groups_never_straddle(tmp_path: Path) -> None:
    root = _with_groups(make_classify(tmp_path / "ds", [45, 30]))
    split(root, ratios="70/20/10", group_key="meta.bin", seed=2)
    ds = Dataset.load(root)
    by_group: dict[str, set[str | None]] = {}
    for r in ds.records:
        by_group.setdefault(r.meta["bin"], set()).add(r.split)
    assert all(len(v) == 1 for v in by_group.values())
    assert Counter(r.split for r in ds.records).keys() == {"train", "val", "test"}
    assert ds.info.split["group_key"] == "meta.bin"  # type: ignore[index]


def test_group_pattern_groups_never_straddle(tmp_path: Path) -> None:
    root = _with_groups(make_classify(tmp_path / "ds", [45, 30]))
    split(root, ratios="70/30", group_pattern=r"^(\w+?)_\d+")
    groups: dict[str, set[str | None]] = {}
    for r in Dataset.load(root).records:
        groups.setdefault(r.file.split("_")[0], set()).add(r.split)
    assert all(len(v) == 1 for v in groups.values())


def test_group_errors(tmp_path: Path) -> None:
    root = make_classify(tmp_path / "ds", [10, 10])
    with pytest.raises(ConfigError, match="invalid regex"):
        split(root, group_pattern="(")
    with pytest.raises(ConfigError, match="expected meta.FIELD"):
        split(root, group_key="bin")


# -- detection ----------------------------------------------------------------------------
def test_detection_rare_class_in_every_split(tmp_path: Path) -> None:
    root = make_detect(tmp_path / "d")
    res = split(root, ratios="70/20/10", seed=0)
    assert all(res.counts[s][2] >= 1 for s in ("train", "val", "test"))
    for s, r in zip(("train", "val", "test"), (0.7, 0.2, 0.1), strict=True):
        assert abs(res.images[s] - 120 * r) <= 2  # the rare class's minimum may move one image
    assert Dataset.load(root).info.split["stratify"] == "rarest_class+object_count"  # type: ignore[index]
    with pytest.raises(ConfigError, match="classify/count"):
        split(root, ratios="80/20", test_per_class=2, force=True)


# -- existing splits ----------------------------------------------------------------------
def test_refuses_to_overwrite_then_force_and_keep(tmp_path: Path) -> None:
    root = make_classify(tmp_path / "ds", [20, 20])
    split(root, ratios="80/20")
    first = mapping(root)
    with pytest.raises(DatasetError, match="--force to overwrite them or --keep-existing"):
        split(root, ratios="50/50")
    assert mapping(root) == first
    split(root, ratios="50/50", force=True)
    assert Counter(mapping(root).values()) == {"train": 20, "val": 20}

    ds = Dataset.load(root)
    for r in ds.records[:10]:
        r.split = None
    kept = {r.id: r.split for r in ds.records[10:]}
    ds.save()
    res = split(root, ratios="80/20", keep_existing=True)
    assert res.assigned == 10
    after = mapping(root)
    assert all(after[k] == v for k, v in kept.items())
    assert all(v is not None for v in after.values())


def test_manifest_rewrite_is_valid_json(tmp_path: Path) -> None:
    root = make_classify(tmp_path / "ds", [5, 5])
    split(root)
    lines = (root / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 10 and all(json.loads(x)["split"] in ("train", "val") for x in lines)


# -- CLI ----------------------------------------------------------------------------------
def test_cli_prints_table_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_classify(tmp_path / "ds", [10, 10], task="count")
    assert main(["split", str(root), "--ratios", "70/20/10", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "7 (70.0%)" in out and "(images)" in out
    assert main(["split", str(root), "--ratios", "70/20/10"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["split", str(root), "--ratios", "80/30", "--force"]) == 2
    assert "sum to 110" in capsys.readouterr().err
