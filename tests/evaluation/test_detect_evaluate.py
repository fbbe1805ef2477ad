"""Detection evaluation: metrics.json contents, a perfect predictor, the mAP bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.conftest import write_truncated_jpeg
from tests.engine.tinydetect import make_detect_dataset, make_detect_run

from cvpipe.data.manifest import Dataset
from cvpipe.engine.runs import ModelCard
from cvpipe.errors import CheckpointError
from cvpipe.evaluation.detect import evaluate_detector
from cvpipe.evaluation.evaluate import evaluate_run
from cvpipe.evaluation.map_bootstrap import bootstrap_map_diff, match, weighted_map
from cvpipe.evaluation.selection import select_eval_data
from cvpipe.inference.detect import DetectStream, as_detections
from cvpipe.metrics.detection import as_ground_truth, as_predictions, coco_metrics
from cvpipe.models.preprocess import Preprocess

COCO_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
             "mar_1", "mar_10", "mar_100")  # fmt: skip


class TruthPredictor(DetectStream):
    """Predicts each file's ground truth (the test tags decoded images with their name)."""

    def __init__(self, ds: Dataset, classes: list[str] | None = None) -> None:
        self.card = ModelCard(
            task="detect", classes=classes or list(ds.classes), model="truth", head={},
            preprocess=Preprocess(input_size=64, resize_size=64), input_size=64,
        )  # fmt: skip
        self.by_file = {ds.image_path(r).name: r for r in ds.records}

    def set_postprocess(self, **kw) -> None:
        pass

    def detect(self, images: list[Image.Image]):
        return [self._truth(im) for im in images]

    def _truth(self, im: Image.Image):
        rec = self.by_file[im.info["name"]]
        sx, sy = im.width / rec.width, im.height / rec.height
        boxes = np.asarray(rec.boxes or [], dtype=np.float32).reshape(-1, 4) * [sx, sy, sx, sy]
        return as_detections(boxes, np.linspace(0.99, 0.9, len(boxes)), rec.labels or [])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Path]:
    root = tmp_path_factory.mktemp("det")
    ds = make_detect_dataset(root / "ds", splits={"train": 1, "val": 3, "test": 4})
    return ds, make_detect_run(root / "run", ds)


def test_eval_detect_run_writes_metrics_predictions_report(tiny) -> None:
    ds, run = tiny
    res = evaluate_run(run)
    m = json.loads((run / "eval" / "metrics.json").read_text())
    for key in (*COCO_KEYS, "per_class", "iou_statistics", "confidence_statistics", "pr_curves"):
        assert key in m, key
    assert m["task"] == "detect" and m["split"] == "test" and m["n"] == 4
    assert set(m["per_class"]) == {"plane", "car"}
    assert set(m["iou_statistics"]["stats"]) >= {
        "count",
        "mean",
        "std",
        "min",
        "q25",
        "median",
        "q75",
        "max",
    }
    assert m["confidence_statistics"]["stats"]["count"] == sum(len(json.loads(x)["scores"]) for x in
                                                              (run / "eval" / "predictions.jsonl").read_text().splitlines())  # fmt: skip
    c = m["counting"]
    assert c["threshold_source"].startswith("chosen on val") and len(c["threshold_table"]) == 19
    assert {"exact_accuracy", "mae", "threshold"} <= set(c) and m["mae"] == c["mae"]
    rows = [json.loads(x) for x in (run / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r.id for r in ds.split_records("test")]
    assert all(
        set(r["labels"]) <= {"plane", "car"} and len(r["boxes"]) == len(r["scores"]) for r in rows
    )
    assert res.report is not None and "Precision–recall" in res.report.read_text()


def test_perfect_predictor_has_map_one_and_exact_counts(tiny, tmp_path: Path, monkeypatch) -> None:
    ds, _ = tiny
    import cvpipe.inference.detect as dp

    orig = dp.decode

    def decode(path, mode="RGB", draft=None, orientation=None):
        im = orig(path, mode, draft, orientation)
        im.info["name"] = Path(path).name
        return im

    monkeypatch.setattr(dp, "decode", decode)
    # an unreadable image in the split is reported and left out
    bad = ds.root / "images" / "broken.jpg"
    write_truncated_jpeg(bad)
    recs = [*ds.split_records("test"), type(ds.records[0])(id="broken", file="images/broken.jpg",
                                                          width=64, height=48, split="test", boxes=[], labels=[])]  # fmt: skip
    sel = select_eval_data(ds.root, ds.root, "test")
    sel.records = recs
    res = evaluate_detector(
        TruthPredictor(ds), sel, out_dir=tmp_path / "ev", source={"run": "truth"}
    )
    m = res.metrics
    assert m["map"] == pytest.approx(1.0) and m["map_50"] == pytest.approx(1.0)
    assert m["mar_100"] == pytest.approx(1.0)
    assert m["iou_statistics"]["stats"]["mean"] == pytest.approx(1.0, abs=1e-4)
    assert m["counting"]["exact_accuracy"] == 1.0 and m["mae"] == 0.0
    assert m["n_skipped"] == 1 and m["skipped"][0]["id"] == "broken"
    last = (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["error"].startswith("truncated")


def test_wrong_classes_is_a_clear_error(tiny, tmp_path: Path) -> None:
    ds, _ = tiny
    sel = select_eval_data(ds.root, ds.root, "test")
    with pytest.raises(CheckpointError, match="same classes"):
        evaluate_detector(
            TruthPredictor(ds, ["x", "y"]), sel, out_dir=tmp_path, source={"run": "r"}
        )


def random_case(seed: int, n_images: int = 12, n_classes: int = 3):
    rng = np.random.default_rng(seed)
    gt, pr = [], []
    for i in range(n_images):
        n = 0 if i % 5 == 4 else int(rng.integers(1, 5))
        xy = rng.uniform(0, 80, (n, 2))
        wh = rng.uniform(8, 40, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, n_classes, n)
        crowd = (rng.random(n) < 0.15).astype(int)
        gt.append({"boxes": boxes, "labels": labels, "iscrowd": crowd, "width": 120, "height": 120})
        m = int(rng.integers(0, 7))
        jitter = (
            boxes[rng.integers(0, n, m)] + rng.normal(0, 4, (m, 4))
            if n
            else rng.uniform(0, 90, (m, 4))
        )
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 2)
        pr.append(
            {"boxes": jitter, "scores": rng.random(m), "labels": rng.integers(0, n_classes, m)}
        )
    return gt, pr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_map_with_unit_weights_is_coco_map(seed: int) -> None:
    gt, pr = random_case(seed)
    classes = ["a", "b", "c"]
    ref = coco_metrics(gt, pr, classes, backend="pycocotools")
    mt = match(as_ground_truth(gt, 3), as_predictions(pr, 3), 3)
    m, m50 = weighted_map(mt, np.ones((1, len(gt))))
    assert m[0] == pytest.approx(ref["map"], abs=1e-9)
    assert m50[0] == pytest.approx(ref["map_50"], abs=1e-9)
    # a weight-2 image equals evaluating with that image duplicated
    w = np.ones(len(gt))
    w[3] = 2
    dup = [*gt, gt[3]], [*pr, pr[3]]
    ref2 = coco_metrics(dup[0], dup[1], classes, backend="pycocotools")
    assert weighted_map(mt, w[None])[0][0] == pytest.approx(ref2["map"], abs=1e-6)


def test_bootstrap_ci_of_map_difference() -> None:
    gt, pr = random_case(0, n_images=20)
    g = as_ground_truth(gt, 3)
    a = match(g, as_predictions(pr, 3), 3)
    same = bootstrap_map_diff(a, a, len(gt), n_resamples=200)
    assert same["diff"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    b = match(g, as_predictions(gt_as_preds(gt), 3), 3)
    res = bootstrap_map_diff(a, b, len(gt), n_resamples=300, seed=1)
    assert res["map_b"] == pytest.approx(1.0) and res["diff"] > 0
    assert 0 < res["ci_low"] <= res["diff"] <= res["ci_high"]
    assert res == bootstrap_map_diff(a, b, len(gt), n_resamples=300, seed=1)  # seeded


def gt_as_preds(gt):
    return [
        {"boxes": g["boxes"], "labels": g["labels"], "scores": np.ones(len(g["boxes"]))} for g in gt
    ]


@pytest.mark.slow
def test_real_one_epoch_detection_run_evaluates_and_predicts(tmp_path: Path) -> None:
    from cvpipe.config import load_config
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train
    from cvpipe.inference.predictor import BasePredictor

    ds = make_detect_dataset(tmp_path / "ds", splits={"train": 4, "val": 2, "test": 2})
    overrides = ["model=ssdlite320_mobilenet_v2", "weights=none", "input_size=64", "epochs=1",
                 "batch_size=4", "workers=0", "device=cpu", "health.enabled=false"]  # fmt: skip
    train(ds.root, tmp_path / "run", load_config(TrainConfig, overrides=overrides))
    res = evaluate_run(tmp_path / "run")
    assert res.metrics["task"] == "detect" and res.metrics["n"] == 2
    assert res.metrics["map"] is not None and "counting" in res.metrics
    pred = BasePredictor.from_run(tmp_path / "run")
    out = pred.predict_images([Image.new("RGB", (80, 64))])[0]  # type: ignore[attr-defined]
    assert out["boxes"].shape[1] == 4
