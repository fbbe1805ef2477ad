"""``cvpipe eval``, ``compare`` and ``predict`` through the real command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from tests.conftest import write_image, write_truncated_jpeg
from tests.evaluation.test_evaluate import make_dataset, make_run

from cvpipe.cli.main import main


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    ds = make_dataset(tmp_path / "ds")
    return ds.root, make_run(tmp_path / "run", ds)


def test_eval_prints_headline_and_report(tiny, capsys) -> None:
    _, run = tiny
    assert main(["eval", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "macro F1" in out and "precision" in out
    assert f"report:  {run / 'eval' / 'report.html'}" in out
    assert json.loads((run / "eval" / "metrics.json").read_text())["split"] == "test"


def test_eval_bad_split_is_one_line_error(tiny, capsys) -> None:
    _, run = tiny
    assert main(["eval", str(run), "--split", "val", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "split 'val' has no images" in err and "Traceback" not in err


def test_compare_prints_table(tiny, tmp_path: Path, capsys) -> None:
    ds, run = tiny
    from cvpipe.data.manifest import Dataset

    run2 = make_run(tmp_path / "run2", Dataset.load(ds), seed=1)
    out_dir = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                str(run),
                str(run2),
                "--names",
                "base,new",
                "--out",
                str(out_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "baseline" in out and "McNemar p" in out and "new F1" in out
    assert (out_dir / "compare.json").is_file() and (out_dir / "report.html").is_file()
    assert main(["compare", str(run), "--no-progress"]) == 2
    assert "at least two runs" in capsys.readouterr().err


def test_predict_json_csv_and_errors(tiny, tmp_path: Path, capsys) -> None:
    ds, run = tiny
    imgs = tmp_path / "in"
    write_image(imgs / "x.png", seed=1)
    write_image(imgs / "sub" / "y.jpg", seed=2)
    write_truncated_jpeg(imgs / "broken.jpg")
    assert (
        main(["predict", str(run), str(imgs), str(tmp_path / "missing.png"), "--top-k", "2"]) == 0
    )
    cap = capsys.readouterr()
    rows = [json.loads(line) for line in cap.out.splitlines()]
    assert len(rows) == 4
    good = [r for r in rows if "error" not in r]
    assert len(good) == 2 and all(len(r["top_k"]) == 2 and r["class"] in "abc" for r in good)
    assert {Path(r["file"]).name for r in rows if "error" in r} == {"broken.jpg", "missing.png"}
    assert "2 input(s) could not be predicted" in cap.err
    out_csv = tmp_path / "p.csv"
    assert (
        main(["predict", str(run), str(imgs / "*.png"), "--format", "csv", "--out", str(out_csv)])
        == 0
    )
    table = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(table) == 1 and table[0]["class"] in "abc" and float(table[0]["prob1"]) > 0
    assert set(table[0]) >= {"file", "class", "confidence", "class3", "prob3", "error"}
    capsys.readouterr()
    # nothing predictable: exit code 1
    assert main(["predict", str(run), str(imgs / "broken.jpg")]) == 1
    assert "no image could be predicted" in capsys.readouterr().err
    assert main(["predict", str(run), "https://example.com/a.jpg"]) == 2
    assert "not supported" in capsys.readouterr().err


def test_predict_count_run_reports_count(tmp_path: Path, capsys) -> None:
    ds = make_dataset(tmp_path / "bins", classes=("1", "2", "5"), task="count", per=1)
    run = make_run(tmp_path / "run", ds)
    assert main(["predict", str(run), str(ds.root / "images")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["count"] in (1, 2, 5) and str(r["count"]) == r["class"] for r in rows)


@pytest.mark.slow
def test_real_training_run_eval_compare_predict(tmp_path: Path, capsys) -> None:
    """A real 1-epoch run from the trainer goes through all three verbs."""
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train

    ds = make_dataset(tmp_path / "ds", splits=("train", "val", "test"), per=3)
    cfg = TrainConfig(
        model="base_cnn",
        weights="none",
        epochs=1,
        batch_size=8,
        input_size=32,
        workers=0,
        device="cpu",
    )
    train(ds.root, tmp_path / "r1", cfg)
    assert main(["eval", str(tmp_path / "r1"), "--no-progress"]) == 0
    assert (tmp_path / "r1" / "eval" / "report.html").is_file()
    baseline = make_run(tmp_path / "r0", ds)
    assert (
        main(
            [
                "compare",
                str(baseline),
                str(tmp_path / "r1"),
                "--out",
                str(tmp_path / "cmp"),
                "--no-progress",
            ]
        )
        == 0
    )
    d = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert d["n"] == 9 and d["runs"][1]["reused_eval"] is True
    assert main(["predict", str(tmp_path / "r1"), str(ds.root / "images" / "a_test_0.png")]) == 0
    capsys.readouterr()
