"""evaluate_run and compare_runs on tiny fabricated runs (model card + checkpoint + lock)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import write_image, write_truncated_jpeg

from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.engine.checkpoint import save_checkpoint
from cvpipe.engine.runs import ModelCard
from cvpipe.errors import CheckpointError, ConfigError, DatasetError
from cvpipe.evaluation import classify as ev
from cvpipe.evaluation.classify_report import overall_table, per_class_table
from cvpipe.evaluation.compare import compare_runs
from cvpipe.evaluation.evaluate import evaluate_run
from cvpipe.evaluation.selection import iter_predictions, select_eval_data
from cvpipe.models.classification import create_classifier
from cvpipe.models.heads import HeadSpec


def make_dataset(
    root: Path, classes=("a", "b", "c"), task="classify", splits=("train", "test"), per=4
) -> Dataset:
    recs = []
    for ci, c in enumerate(classes):
        for k in range(per):
            for sp in splits:
                f = f"images/{c}_{sp}_{k}.png"
                write_image(root / f, (40, 32), seed=ci * 100 + k)
                rec = Record(id=f"{c}_{sp}_{k}", file=f, width=40, height=32, split=sp)
                if task == "count":
                    rec.count = int(c)
                else:
                    rec.label = ci
                recs.append(rec)
    Dataset(root, DatasetInfo(name=root.name, task=task, classes=list(classes)), recs).save()
    return Dataset.load(root)


def make_run(run: Path, ds: Dataset, seed: int = 0, epochs: int = 3) -> Path:
    torch.manual_seed(seed)
    net = create_classifier(
        "base_cnn", num_classes=len(ds.classes), weights=None, input_size=32, head=HeadSpec()
    )
    card = ModelCard(
        task=ds.task,
        classes=list(ds.classes),
        model="base_cnn",
        head={},
        preprocess=net.preprocess,
        input_size=32,
    )
    card.save(run / "model_card.json")
    meta = {"task": ds.task, "classes": list(ds.classes), "model": "base_cnn"}
    save_checkpoint(
        run / "checkpoints" / "best.pt", {"model": net.state_dict(), "epoch": epochs}, meta
    )
    lock = {"dataset": str(ds.root.resolve()), "manifest_sha256": ds.manifest_hash(), "splits": {}}
    (run / "dataset.lock").write_text(json.dumps(lock))
    rows = [
        {
            "kind": "epoch",
            "epoch": e,
            "train.loss": 1 / e + seed,
            "val.loss": 1.1 / e,
            "val.accuracy": 0.2 * e,
        }
        for e in range(1, epochs + 1)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Dataset, Path]:
    ds = make_dataset(tmp_path / "ds")
    return ds, make_run(tmp_path / "run", ds)


def test_eval_writes_metrics_predictions_report(tiny) -> None:
    ds, run = tiny
    res = evaluate_run(run)
    m = json.loads((run / "eval" / "metrics.json").read_text())
    for key in (
        "accuracy",
        "per_class",
        "macro",
        "weighted",
        "confusion_matrix",
        "top_k",
        "ece",
        "n",
        "split",
        "dataset",
        "skipped",
    ):
        assert key in m, key
    assert m["split"] == "test" and m["n"] == 12 and m["skipped"] == []
    assert m["dataset"] == str(ds.root.resolve())
    rows = list(iter_predictions(res.predictions))
    assert len(rows) == 12 and {r["id"] for r in rows} == {r.id for r in ds.split_records("test")}
    assert set(rows[0]) >= {"id", "file", "true", "pred", "probs", "confidence", "correct"}
    # metrics agree with the rows written
    assert m["accuracy"] == pytest.approx(np.mean([r["pred"] == r["true"] for r in rows]))
    assert sum(map(sum, m["confusion_matrix"]["counts"])) == 12
    html = res.report.read_text()
    assert (
        "Confusion matrix" in html and "Calibration" in html and html.count("data:image/png") >= 3
    )


def test_corrupt_images_are_skipped_and_reported(tiny) -> None:
    ds, run = tiny
    write_truncated_jpeg(
        ds.root / "images" / "a_test_0.png"
    )  # replace one test image with a broken file
    (ds.root / "images" / "b_test_1.png").unlink()
    res = evaluate_run(run, report=False)
    assert res.metrics["n"] == 10 and res.metrics["n_skipped"] == 2
    skipped = {s["id"]: s["error"] for s in res.metrics["skipped"]}
    assert set(skipped) == {"a_test_0", "b_test_1"} and skipped["b_test_1"].startswith("missing")
    rows = list(iter_predictions(res.predictions))
    assert len(rows) == 12 and sum("error" in r for r in rows) == 2
    assert res.report is None


def test_counting_metrics_for_count_runs(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "bins", classes=("1", "2", "3"), task="count", per=3)
    run = make_run(tmp_path / "run", ds)
    m = evaluate_run(run, report=True).metrics
    for key in ("mae", "rmse", "off_by_one_accuracy", "mean_signed_error", "per_count"):
        assert m[key] is not None, key
    rows = list(iter_predictions(run / "eval" / "predictions.jsonl"))
    err = [int(r["pred"]) - int(r["true"]) for r in rows]
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert m["mean_signed_error"] == pytest.approx(np.mean(err))
    assert "Counting" in (run / "eval" / "report.html").read_text()


def test_split_selection_fallback_and_errors(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", splits=("train", "val"), per=2)
    run = make_run(tmp_path / "run", ds)
    sel = select_eval_data(run)
    assert sel.split == "val" and "no test split" in sel.notice
    assert evaluate_run(run, report=False).metrics["notice"] == sel.notice
    with pytest.raises(
        DatasetError, match="split 'test' has no images; splits present: train, val"
    ):
        select_eval_data(run, split="test")
    # a val split carved at training time is found through the run's dataset.lock
    nosplit = make_dataset(tmp_path / "ds2", splits=("train",), per=2)
    run2 = make_run(tmp_path / "run2", nosplit)
    lock = json.loads((run2 / "dataset.lock").read_text())
    lock["splits"] = {"train": ["a_train_0"], "val": ["a_train_1", "b_train_1"]}
    (run2 / "dataset.lock").write_text(json.dumps(lock))
    sel2 = select_eval_data(run2)
    assert sel2.split == "val" and [r.id for r in sel2.records] == ["a_train_1", "b_train_1"]
    (run2 / "dataset.lock").unlink()
    with pytest.raises(DatasetError, match="--data"):
        select_eval_data(run2)


def test_class_mismatch_is_a_clear_error(tiny, tmp_path: Path) -> None:
    _, run = tiny
    other = make_dataset(tmp_path / "other", classes=("x", "y", "z"), per=1)
    with pytest.raises(CheckpointError, match=r"trained on classes \['a', 'b', 'c'\]"):
        evaluate_run(run, data=other.root)


def test_streaming_chunks_give_the_same_metrics(tiny, monkeypatch) -> None:
    _, run = tiny
    whole = evaluate_run(run, report=False).metrics
    monkeypatch.setattr(ev, "CHUNK", 5)
    chunked = evaluate_run(run, report=False, batch_size=3).metrics
    assert chunked["confusion_matrix"] == whole["confusion_matrix"]
    assert chunked["ece"] == pytest.approx(whole["ece"]) and chunked["top_k"] == pytest.approx(
        whole["top_k"]
    )


def test_compare_runs(tiny, tmp_path: Path) -> None:
    ds, run = tiny
    evaluate_run(run, report=False)
    run2 = make_run(tmp_path / "run2", ds, seed=1)
    res = compare_runs([run, run2], names=["base", "new"], out=tmp_path / "cmp")
    d = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert (
        d["n"] == 12
        and d["baseline"] == "base"
        and [r["name"] for r in d["runs"]] == ["base", "new"]
    )
    assert d["runs"][0]["reused_eval"] is True and d["runs"][1]["reused_eval"] is False
    assert (tmp_path / "cmp" / "evals" / "new" / "predictions.jsonl").is_file()
    assert not (run2 / "eval").exists()  # the run directory is not touched
    pair = d["pairs"][0]
    assert pair["diff"] == pytest.approx(d["runs"][1]["accuracy"] - d["runs"][0]["accuracy"])
    assert pair["ci_low"] <= pair["diff"] <= pair["ci_high"]
    assert pair["mcnemar"]["method"] == "exact"
    headers, rows = overall_table(d)
    assert rows[0][-3] == "baseline" and rows[1][-1] != ""
    headers, rows = per_class_table(d)
    assert headers[:4] == ["class", "base P", "base R", "base F1"] and rows[-1][0] == "accuracy"
    html = res.report.read_text()
    assert "Training curves" in html and "McNemar" in html


def test_compare_errors(tiny, tmp_path: Path) -> None:
    ds, run = tiny
    with pytest.raises(ConfigError, match="at least two"):
        compare_runs([run], out=tmp_path / "c")
    with pytest.raises(ConfigError, match="one name per run"):
        compare_runs([run, run], names=["x"], out=tmp_path / "c")
    other = make_run(tmp_path / "other", make_dataset(tmp_path / "ods", classes=("a", "b"), per=1))
    with pytest.raises(CheckpointError, match="classes"):
        compare_runs([run, other], out=tmp_path / "c", report=False)
