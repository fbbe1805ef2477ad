"""cvpipe audit end to end on tiny data: leaks, conflicting labels, label errors, the
report, --fix (inputs untouched) and the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from tinydata import make_dataset  # noqa: E402

from cvpipe.audit.config import AuditConfig  # noqa: E402
from cvpipe.audit.fix import write_fixed  # noqa: E402
from cvpipe.audit.scan import audit  # noqa: E402
from cvpipe.cli.main import main  # noqa: E402
from cvpipe.config import load_config  # noqa: E402
from cvpipe.data.manifest import Dataset, Record  # noqa: E402
from cvpipe.errors import ConfigError, MissingDependencyError  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def cfg(tmp_path: Path, *overrides: str) -> AuditConfig:
    values = {
        "model": "base_cnn", "weights": "none", "input_size": 32, "device": "cpu",
        "feature_cache_dir": str(tmp_path / "features"), "duplicates.input_size": 32,
        "labels.folds": 3,
    }  # fmt: skip
    return load_config(AuditConfig, values=values, overrides=list(overrides))


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def dirty(tmp_path: Path) -> Path:
    """3 classes x 10 (7 train, 3 val); then a byte copy of a train image in test (a leak),
    a copy of another with a different label in val (leak + conflict), and 2 train labels
    flipped to the wrong class."""
    root = make_dataset(tmp_path / "ds", classes=3, per_class=10, splits={"train": 7, "val": 3})
    ds = Dataset.load(root)
    a, b = ds.records[0], ds.records[12]  # class a, class b (train)
    for src, name, label, split in ((a, "copy_a.jpg", 0, "test"), (b, "copy_b.jpg", 2, "val")):
        shutil.copyfile(root / src.file, root / "images" / name)
        ds.records.append(
            Record(
                id=name[:-4], file=f"images/{name}", width=32, height=32, split=split, label=label
            )
        )
    ds.records[3].label = 1  # class a image labelled b
    ds.records[25].label = 0  # class c image labelled a
    ds.save()
    return root


def test_audit_finds_leaks_conflicts_and_flipped_labels(tmp_path: Path, dirty: Path) -> None:
    before = _digest(dirty)
    # noise images all look alike to a random backbone: near-duplicates are tested below
    # with structured images; here the byte-identical copies (found by hash) matter
    res = audit(dirty, cfg(tmp_path, "duplicates.threshold=1.0"))
    s = res.summary
    assert s["images"] == 32
    ids = [[res.records[i].id for i in g.members] for g in res.groups]
    assert ["a_000", "copy_a"] in ids and ["b_002", "copy_b"] in ids
    g_a = res.groups[ids.index(["a_000", "copy_a"])]
    g_b = res.groups[ids.index(["b_002", "copy_b"])]
    assert g_a.identical and g_a.leak and not g_a.conflict
    assert g_b.identical and g_b.leak and g_b.conflict
    assert s["leak_groups"] >= 2 and s["conflicting_label_groups"] >= 1
    flagged = {res.records[t.index].id: t for t in res.label_issues}
    assert "a_003" in flagged and "c_005" in flagged  # the two flipped labels
    assert res.dataset.classes[flagged["a_003"].suggested] == "a"
    assert res.dataset.classes[flagged["c_005"].suggested] == "c"
    # files: audit.json lists everything; the report shows the grids; inputs untouched
    data = json.loads((dirty / "audit" / "audit.json").read_text())
    assert data["summary"]["leak_groups"] == s["leak_groups"]
    assert {d["id"] for d in data["label_issues"]} >= {"a_003", "c_005"}
    html = (dirty / "audit" / "report.html").read_text()
    assert "Near-duplicates and split leaks" in html and "Likely label errors" in html
    assert html.count("data:image/png;base64,") >= 3
    assert "LEAK" in html and "LABELS DIFFER" in html
    assert _digest(dirty) != before  # only because audit/ was added
    shutil.rmtree(dirty / "audit")
    assert _digest(dirty) == before
    # a second audit reads the embeddings from the feature cache
    assert audit(dirty, cfg(tmp_path, "duplicates.threshold=1.0")).embeddings.cache == "hit"


def test_fix_writes_a_cleaned_copy_and_never_touches_inputs(tmp_path: Path, dirty: Path) -> None:
    res = audit(dirty, cfg(tmp_path, "report=false", "duplicates.threshold=1.0"))
    before = _digest(dirty)
    out = tmp_path / "clean"
    summary = write_fixed(res, out)
    assert _digest(dirty) == before
    clean = Dataset.load(out)
    by_id = {r.id: r for r in clean.records}
    # each leak group ends in train, copies within a split collapsed to the first record
    assert "copy_a" not in by_id and "copy_b" not in by_id
    assert by_id["a_000"].split == "train" and by_id["b_002"].split == "train"
    assert {d["id"] for d in summary["dropped"]} >= {"copy_a", "copy_b"}
    assert by_id["a_003"].label == 1  # labels kept without --relabel
    assert clean.image_path(by_id["a_000"]).is_file()  # images referenced, not copied
    assert clean.info.derived_from == str(dirty.resolve())
    relabelled = write_fixed(res, tmp_path / "relabel", relabel=True)
    again = {r.id: r for r in Dataset.load(tmp_path / "relabel").records}
    assert again["a_003"].label == 0 and again["c_005"].label == 2
    assert {d["id"] for d in relabelled["relabelled"]} >= {"a_003", "c_005"}
    with pytest.raises(ConfigError, match="is the dataset itself"):
        write_fixed(res, dirty)
    with pytest.raises(ConfigError, match="already holds a dataset"):
        write_fixed(res, out)


def test_cli_audit_and_fix(tmp_path: Path, dirty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["audit", str(dirty), "--model", "base_cnn", "--weights", "none", "--device", "cpu",
            "--set", "input_size=32", "--set", "duplicates.input_size=32", "--set", "labels.folds=3",
            "--set", "duplicates.threshold=1.0", "--set", f"feature_cache_dir={tmp_path / 'features'}", "--out", str(tmp_path / "a"),
            "--fix", str(tmp_path / "fixed"), "--relabel"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr()
    assert "leak groups (span splits)" in out.out and "cleaned dataset" in out.out
    assert (tmp_path / "a" / "report.html").is_file()
    assert (tmp_path / "fixed" / "audit_fix.json").is_file()
    assert main(["audit", str(dirty), "--relabel"]) == 2  # --relabel needs --fix
    assert "--relabel is used with --fix" in capsys.readouterr().err


def test_unknown_split_is_an_error(tmp_path: Path, dirty: Path) -> None:
    with pytest.raises(ConfigError, match="not in"):
        audit(dirty, cfg(tmp_path, "splits=[holdout]"))


def test_missing_cleanlab_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from cvpipe.audit.deps import import_cleanlab

    monkeypatch.setitem(sys.modules, "cleanlab", None)
    with pytest.raises(MissingDependencyError, match=r"cvpipe\[audit\]"):
        import_cleanlab()


def test_run_scores_the_images_it_did_not_train_on(tmp_path: Path, dirty: Path) -> None:
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train

    tcfg = load_config(
        TrainConfig,
        values={"model": "base_cnn", "weights": "none", "input_size": 32, "epochs": 2,
                "batch_size": 8, "workers": 0, "feature_cache_dir": str(tmp_path / "features"),
                "health.enabled": False},
    )  # fmt: skip
    train(dirty, tmp_path / "run", tcfg)
    lock = json.loads((tmp_path / "run" / "dataset.lock").read_text())
    res = audit(dirty, cfg(tmp_path, "duplicates.threshold=1.0"), run=tmp_path / "run")
    assert res.summary["probabilities"].startswith(
        f"{32 - len(lock['splits']['train'])} images from run"
    )
    trained = set(lock["splits"]["train"])
    for t in res.label_issues:  # images the run trained on keep their k-fold scores
        assert (t.source == "kfold") == (res.records[t.index].id in trained)
