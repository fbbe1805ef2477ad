"""``cvpipe eval``, ``compare`` and ``predict`` on detectors through the real command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from tests.conftest import write_truncated_jpeg
from tests.engine.tinydetect import make_detect_dataset, make_detect_run
from tests.evaluation.test_external import const_onnx

from cvpipe.cli.main import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("detcli")
    ds = make_detect_dataset(root / "ds", splits={"val": 2, "test": 3})
    return ds.root, make_detect_run(root / "a", ds), make_detect_run(root / "b", ds, seed=1)


def test_eval_and_compare_detect_runs(runs, tmp_path: Path, capsys) -> None:
    ds, a, b = runs
    assert main(["eval", str(a), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mAP@[.5:.95]" in out and "AR@100" in out and "count accuracy" in out
    cmp = tmp_path / "cmp"
    args = ["compare", str(a), str(b), "--names", "base,new", "--out", str(cmp),
            "--resamples", "100", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Δ mAP" in out and "baseline" in out
    data = json.loads((cmp / "compare.json").read_text())
    pair = data["pairs"][0]
    assert data["task"] == "detect" and pair["other"] == "new" and pair["n_resamples"] == 100
    assert pair["ci_low"] <= pair["diff"] <= pair["ci_high"]
    assert (cmp / "pr_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (cmp / "iou_distributions.png").is_file() and (cmp / "report.html").is_file()
    assert data["runs"][0]["reused_eval"] is True  # a's eval above was reused


def test_benchmark_eval_then_compare_with_a_run(runs, tmp_path: Path, capsys) -> None:
    ds, a, _ = runs
    model = const_onnx(tmp_path / "tf.onnx", "tf")
    cmap = tmp_path / "map.json"
    cmap.write_text(json.dumps({"airplane": "plane", "car": "car"}))
    ev = tmp_path / "bench"
    argv = ["eval", "--benchmark-model", str(model), "--class-map", str(cmap), "--data", str(ds),
            "--out", str(ev), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "mAP@.5" in capsys.readouterr().out
    assert json.loads((ev / "metrics.json").read_text())["which"] == "pretrained"
    out = tmp_path / "cmp"
    assert (
        main(["compare", str(ev), str(a), "--out", str(out), "--resamples", "50", "--no-progress"])
        == 0
    )
    assert json.loads((out / "compare.json").read_text())["baseline"] == "bench"
    assert main(["eval", "--benchmark-model", str(model), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--data DATASET and --out DIR" in err and "Traceback" not in err


def test_predict_detect_json_csv_and_draw(runs, tmp_path: Path, capsys) -> None:
    ds, a, _ = runs
    images = ds / "images"
    bad = write_truncated_jpeg(tmp_path / "bad.jpg")
    draw = tmp_path / "drawn"
    argv = ["predict", str(a), str(images), str(bad), "--score-thresh", "0.2", "--max-detections",
            "4", "--draw", str(draw), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    good = [r for r in rows if "error" not in r]
    assert len(good) == 5 and any(r["file"] == str(bad) and "error" in r for r in rows)
    for r in good:
        assert r["count"] == len(r["detections"]) <= 4
        for d in r["detections"]:
            assert len(d["box"]) == 4 and d["score"] >= 0.2 and d["label"] in ("plane", "car")
        assert Path(r["drawn"]).is_file()
    assert len(list(draw.glob("*.jpg"))) == 5
    out = tmp_path / "p.csv"
    one = sorted(images.glob("*.jpg"))[0]
    assert main(["predict", str(a), str(one), "--format", "csv", "--out", str(out),
                 "--score-thresh", "0.0", "--no-progress"]) == 0  # fmt: skip
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert table and set(table[0]) == {"file", "label", "score", "x1", "y1", "x2", "y2", "error"}
    assert main(["predict", str(a), str(one), "--score-thresh", "2", "--no-progress"]) == 2
    assert "score threshold" in capsys.readouterr().err
