from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cvpipe.cli.main import main
from cvpipe.data.balance import balance, class_weights
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.errors import ConfigError, DatasetError


def make_ds(
    root: Path,
    train: list[int],
    val: list[int] | None = None,
    write_image: Callable[..., Path] | None = None,
) -> Path:
    """Classify dataset under root/ds with images in root/img; train/val sizes per class."""
    recs = []
    for split, sizes in (("train", train), ("val", val or [])):
        for c, n in enumerate(sizes):
            for i in range(n):
                file = f"{split}/c{c}_{i}.png"
                if write_image is not None:
                    write_image(root / "img" / file, (8, 8), seed=i)
                recs.append(
                    Record(
                        id=f"{split}_c{c}_{i:03d}",
                        file=file,
                        width=8,
                        height=8,
                        split=split,
                        label=c,
                        meta={"k": i},
                    )
                )
    ds_root = root / "ds"
    Dataset(
        ds_root,
        DatasetInfo(
            name="ds",
            task="classify",
            classes=[f"c{i}" for i in range(len(train))],
            image_root="../img",
            history=["import x"],
        ),
        recs,
    ).save()
    return ds_root


def digest(root: Path) -> str:
    return hashlib.sha256(
        (root / "manifest.jsonl").read_bytes() + (root / "dataset.yaml").read_bytes()
    ).hexdigest()


def test_class_weights_hand_computed() -> None:
    # inverse 0.1, 0.05, 0.025 → mean 0.058333 → 1.714286, 0.857143, 0.428571
    assert class_weights([10, 20, 40]) == [1.714286, 0.857143, 0.428571]
    assert class_weights([5, 5]) == [1.0, 1.0]
    assert class_weights([4, 0, 12]) == [1.5, 0.0, 0.5]
    assert class_weights([0, 0]) == [0.0, 0.0]


def test_undersample_train_only_and_originals_untouched(
    tmp_path: Path, make_image: Callable[..., Path]
) -> None:
    src = make_ds(tmp_path, train=[12, 5, 8], val=[4, 2, 3], write_image=make_image)
    before = digest(src)
    res = balance(src, out=tmp_path / "bal", strategy="undersample", seed=1)
    assert res.after["train"] == [5, 5, 5]
    assert res.after["val"] == [4, 2, 3]  # val untouched
    assert res.before["train"] == [12, 5, 8]
    assert digest(src) == before
    out = Dataset.load(tmp_path / "bal")
    assert out.class_counts("train") == [5, 5, 5]
    assert out.info.derived_from == str(src.resolve())
    assert out.info.class_weights == [1.0, 1.0, 1.0]
    assert out.info.history[-1] == "balance undersample splits=train seed=1"
    # same images, nothing copied
    for r in out.records:
        assert out.image_path(r).resolve() == (tmp_path / "img" / r.file).resolve()
        assert out.image_path(r).is_file()
    assert not any(p.suffix == ".png" for p in (tmp_path / "bal").rglob("*"))
    ids = {r.id for r in Dataset.load(src).records}
    assert {r.id for r in out.records} <= ids


def test_undersample_is_seeded(tmp_path: Path) -> None:
    src = make_ds(tmp_path, train=[20, 5])
    a = balance(src, out=tmp_path / "a", seed=3)
    b = balance(src, out=tmp_path / "b", seed=3)
    c = balance(src, out=tmp_path / "c", seed=4)
    ids = [sorted(r.id for r in Dataset.load(res.out).records) for res in (a, b, c)]
    assert ids[0] == ids[1] and ids[0] != ids[2]


def test_oversample_repeats_with_ids_and_meta(tmp_path: Path) -> None:
    src = make_ds(tmp_path, train=[9, 2, 4])
    res = balance(src, out=tmp_path / "over", strategy="oversample")
    assert res.after["train"] == [9, 9, 9]
    out = Dataset.load(tmp_path / "over")
    ids = [r.id for r in out.records]
    assert len(ids) == len(set(ids))
    copies = [r for r in out.records if "#" in r.id]
    assert len(copies) == 7 + 5
    for r in copies:
        base, n = r.id.split("#")
        assert r.meta["oversampled_from"] == base and int(n) >= 2
    # class 1 (2 images → 9): every image repeated 3 times, then one more a 4th (round-robin)
    from collections import Counter

    reps = Counter(r.meta["oversampled_from"] for r in copies if r.label == 1)
    assert sorted(reps.values()) == [3, 4]
    assert all("oversampled_from" not in r.meta for r in Dataset.load(src).records)


def test_target_per_class_and_mapping(tmp_path: Path) -> None:
    src = make_ds(tmp_path, train=[10, 3, 6])
    res = balance(src, out=tmp_path / "t1", strategy="target", per_class=6)
    assert res.after["train"] == [6, 6, 6]
    res = balance(src, out=tmp_path / "t2", strategy="target", target="c0:4,c1:7")
    assert res.after["train"] == [4, 7, 6]  # c2 not named: unchanged
    # weights on the result's train split: counts 4,7,6
    inv = [1 / 4, 1 / 7, 1 / 6]
    expected = [round(x / (sum(inv) / 3), 6) for x in inv]
    assert res.class_weights == expected
    saved = json.loads((tmp_path / "t2" / "class_weights.json").read_text())
    assert (
        saved["weights"] == expected
        and saved["counts"] == [4, 7, 6]
        and saved["computed_on"] == "train"
    )
    assert Dataset.load(tmp_path / "t2").info.class_weights == expected


def test_splits_all(tmp_path: Path) -> None:
    src = make_ds(tmp_path, train=[6, 3], val=[4, 2])
    res = balance(src, out=tmp_path / "all", splits="all")
    assert res.after == {"train": [3, 3], "val": [2, 2]}


def test_detection_balances_by_rarest_class(tmp_path: Path) -> None:
    recs = []
    for i in range(12):  # 'a' alone
        recs.append(
            Record(
                id=f"a{i:02d}",
                file=f"a{i}.jpg",
                width=20,
                height=20,
                split="train",
                boxes=[[0, 0, 5, 5]],
                labels=[0],
            )
        )
    for i in range(3):  # 'b' with an 'a': rarest is b
        recs.append(
            Record(
                id=f"b{i:02d}",
                file=f"b{i}.jpg",
                width=20,
                height=20,
                split="train",
                boxes=[[0, 0, 5, 5]] * 2,
                labels=[0, 1],
            )
        )
    recs.append(
        Record(id="empty", file="e.jpg", width=20, height=20, split="train", boxes=[], labels=[])
    )
    Dataset(tmp_path / "d", DatasetInfo(name="d", task="detect", classes=["a", "b"]), recs).save()
    res = balance(tmp_path / "d", out=tmp_path / "db")
    assert res.before["train"] == [12, 3] and res.after["train"] == [3, 3]
    assert res.objects_after["train"] == [6, 3]
    out = Dataset.load(tmp_path / "db")
    assert "empty" in {r.id for r in out.records}  # images without objects are kept
    assert out.info.class_weights == class_weights([6, 3])


def test_errors(tmp_path: Path) -> None:
    src = make_ds(tmp_path, train=[4, 2])
    with pytest.raises(ConfigError, match="--out"):
        balance(src)
    with pytest.raises(ConfigError, match="is the source dataset"):
        balance(src, out=src)
    with pytest.raises(ConfigError, match="needs --per-class"):
        balance(src, out=tmp_path / "x", strategy="target")
    with pytest.raises(ConfigError, match="unknown class 'c9'"):
        balance(src, out=tmp_path / "x", strategy="target", target="c9:3")
    with pytest.raises(ConfigError, match="apply to --strategy target"):
        balance(src, out=tmp_path / "x", per_class=3)
    with pytest.raises(ConfigError, match="unknown split 'trian'"):
        balance(src, out=tmp_path / "x", splits="trian")
    with pytest.raises(ConfigError, match="strategy"):
        balance(src, out=tmp_path / "x", strategy="smote")
    unsplit = Dataset.load(src)
    for r in unsplit.records:
        r.split = None
    unsplit.save(tmp_path / "u")
    with pytest.raises(DatasetError, match="run 'cvpipe split"):
        balance(tmp_path / "u", out=tmp_path / "x")


def test_cli_prints_before_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_ds(tmp_path, train=[6, 3])
    assert (
        main(["balance", str(src), "--out", str(tmp_path / "o"), "--strategy", "oversample"]) == 0
    )
    out = capsys.readouterr().out
    assert "3 → 6" in out and "class weights" in out
    assert main(["balance", str(src), "--out", str(src)]) == 2
    assert "source dataset" in capsys.readouterr().err
