"""DetectionPredictor: loading a detect run, box scaling to the original file, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.conftest import write_image, write_truncated_jpeg
from tests.engine.tinydetect import make_detect_dataset, make_detect_run

from cvpipe.errors import ConfigError
from cvpipe.inference.detect import (
    DetectionPredictor,
    DetectStream,
    draw_detections,
    filter_detections,
)
from cvpipe.inference.loading import load_model
from cvpipe.inference.predictor import BasePredictor
from cvpipe.models.detector import Detector


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("detpred")
    ds = make_detect_dataset(root / "ds", splits={"test": 2})
    return make_detect_run(root / "run", ds, thresholds={"score": 0.2, "nms_iou": 0.5,
                                                         "detections_per_img": 7})  # fmt: skip


def test_from_run_builds_the_detector_of_the_card(run: Path) -> None:
    det, card = load_model(run)
    assert isinstance(det, Detector) and card.task == "detect" and not det.training
    assert det.postprocess_settings() == {
        "score_thresh": 0.2,
        "nms_iou": 0.5,
        "detections_per_img": 7,
    }
    p = BasePredictor.from_run(run)
    assert isinstance(p, DetectionPredictor) and p.draft == 64
    out = p.predict_images([Image.new("RGB", (90, 70), (120, 10, 10)), Image.new("L", (40, 30))])
    for o, (w, h) in zip(out, [(90, 70), (40, 30)], strict=True):
        k = len(o["scores"])
        assert o["boxes"].shape == (k, 4) and o["labels"].dtype == np.int64 and k <= 7
        assert np.all(o["scores"] >= 0.2) and np.all(np.diff(o["scores"]) <= 0)
        assert (
            o["boxes"][:, [0, 2]].max(initial=0) <= w and o["boxes"][:, [1, 3]].max(initial=0) <= h
        )
    p.set_postprocess(score_thresh=0.5, detections_per_img=3)
    assert p.postprocess_settings()["detections_per_img"] == 3
    with pytest.raises(ConfigError, match="score threshold"):
        p.set_postprocess(score_thresh=1.5)
    with pytest.raises(ConfigError, match="max detections"):
        p.set_postprocess(detections_per_img=0)


class WholeImage(DetectStream):
    """Detects one box covering the image it is given, to check rescaling."""

    draft = 64

    def detect(self, images):
        self.sizes = [im.size for im in images]
        return [{"boxes": np.array([[0, 0, im.width, im.height]], np.float32),
                 "scores": np.array([0.5], np.float32), "labels": np.array([0])} for im in images]  # fmt: skip


def test_predict_paths_boxes_are_in_original_pixels(tmp_path: Path) -> None:
    big = write_image(tmp_path / "big.jpg", (512, 384))
    png = write_image(tmp_path / "b.png", (50, 40))
    bad = write_truncated_jpeg(tmp_path / "bad.jpg")
    p = WholeImage()
    res = list(p.predict_paths([big, bad, png], batch_size=2))
    assert [r.index for r in res] == [0, 1, 2]
    assert p.sizes == [(50, 40)]  # last batch; the JPEG was draft-decoded smaller
    assert res[0].output["boxes"][0].tolist() == [0, 0, 512, 384]
    assert res[1].output is None and res[1].error.startswith("truncated")
    assert res[2].output["boxes"][0].tolist() == [0, 0, 50, 40]


def test_filter_and_draw() -> None:
    det = {"boxes": np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32),
           "scores": np.array([0.9, 0.8, 0.1], np.float32), "labels": np.array([0, 0, 1])}  # fmt: skip
    out = filter_detections(det, score_thresh=0.05, nms_iou=0.5, max_detections=5)
    assert out["scores"].tolist() == pytest.approx([0.9, 0.1])
    assert filter_detections(det, max_detections=1)["scores"].tolist() == pytest.approx([0.9])
    im = draw_detections(Image.new("RGB", (40, 40)), out, ["a", "b"])
    assert im.size == (40, 40) and np.asarray(im).sum() > 0
