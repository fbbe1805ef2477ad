"""COCO detection metrics: hand-computed cases and identity with pycocotools (1e-6)."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np
import pytest

from cvpipe.data.manifest import Record
from cvpipe.errors import ConfigError
from cvpipe.metrics.detection import STAT_KEYS, coco_evaluate, coco_metrics


def _pycocotools(gt: list[dict[str, Any]], preds: list[dict[str, Any]], n_classes: int) -> Any:
    """pycocotools the way its README uses it, from COCO dicts written independently here."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, (g, p) in enumerate(zip(gt, preds, strict=True)):
        images.append({"id": 100 + i, "width": 640, "height": 480})
        crowd = g.get("iscrowd", [0] * len(g["boxes"]))
        for (x1, y1, x2, y2), label, c in zip(g["boxes"], g["labels"], crowd, strict=True):
            anns.append({
                "id": len(anns) + 1, "image_id": 100 + i, "category_id": 7 + int(label),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(c),
            })  # fmt: skip
        for (x1, y1, x2, y2), label, s in zip(p["boxes"], p["labels"], p["scores"], strict=True):
            dets.append({
                "image_id": 100 + i, "category_id": 7 + int(label),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s,
            })  # fmt: skip
    cats = [{"id": 7 + k, "name": f"c{k}"} for k in range(n_classes)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _assert_same(ours: Any, ref: Any) -> None:
    np.testing.assert_allclose(ours.stats, np.asarray(ref.stats), atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], atol=1e-6, rtol=0)


def _crowd_case() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    gt = [
        {"boxes": [[10, 10, 60, 60], [100, 100, 300, 260]], "labels": [0, 0], "iscrowd": [0, 1]},
        {"boxes": [[20, 30, 220, 230], [5, 5, 25, 30]], "labels": [1, 2], "iscrowd": [0, 0]},
        {"boxes": [], "labels": []},  # an image without ground truth, with false positives
        {"boxes": [[50, 50, 90, 95]], "labels": [2]},  # ground truth, no predictions
        {"boxes": [], "labels": []},  # nothing at all
        {"boxes": [[0, 0, 400, 300], [300, 200, 340, 250]], "labels": [1, 1], "iscrowd": [0, 1]},
    ]
    preds = [
        {"boxes": [[12, 11, 61, 58], [150, 150, 200, 200], [120, 110, 290, 250]], "labels": [0, 0, 0],
         "scores": [0.8, 0.95, 0.6]},
        {"boxes": [[25, 30, 210, 235], [6, 4, 26, 28], [0, 0, 30, 30]], "labels": [1, 2, 1],
         "scores": [0.7, 0.55, 0.65]},
        {"boxes": [[10, 10, 40, 40], [200, 200, 260, 280]], "labels": [0, 2], "scores": [0.9, 0.3]},
        {"boxes": [], "labels": [], "scores": []},
        {"boxes": [], "labels": [], "scores": []},
        {"boxes": [[5, 3, 390, 310], [305, 205, 338, 248], [302, 198, 342, 252]], "labels": [1, 1, 1],
         "scores": [0.85, 0.9, 0.2]},
    ]  # fmt: skip
    return gt, preds


def test_identical_to_pycocotools_with_crowds_classes_and_empty_images() -> None:
    gt, preds = _crowd_case()
    ours = coco_evaluate(gt, preds, ["plane", "car", "bird"])
    _assert_same(ours, _pycocotools(copy.deepcopy(gt), preds, 3))
    m = ours.metrics()
    assert m["num_images"] == 6 and m["num_crowd"] == 2 and m["num_gt"] == 5 and m["num_pred"] == 11
    assert m["per_class"]["bird"]["num_gt"] == 2 and m["per_class"]["plane"]["num_pred"] == 4


def _random_case(
    seed: int, n_images: int, n_classes: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)

    def boxes(n: int) -> np.ndarray:
        xy = rng.uniform(0, 560, (n, 2))
        wh = rng.uniform(3, 250, (n, 2))
        return np.round(np.concatenate([xy, np.minimum(xy + wh, [640, 480])], 1), 2)

    gt, preds = [], []
    for _ in range(n_images):
        n = int(rng.integers(0, 8))
        b, labels = boxes(n), rng.integers(0, n_classes, n)
        crowd = (rng.random(n) < 0.08).astype(int)
        gt.append({"boxes": b.tolist(), "labels": labels.tolist(), "iscrowd": crowd.tolist()})
        m = int(rng.integers(0, 30))
        jitter = b + rng.normal(0, 6, b.shape)
        pb = np.concatenate([jitter[rng.random(n) < 0.8], boxes(m)])
        pl = np.concatenate([labels[: len(pb) - m], rng.integers(0, n_classes, m)])
        pl = np.where(rng.random(len(pl)) < 0.1, rng.integers(0, n_classes, len(pl)), pl)
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 0.5)
        preds.append(
            {"boxes": pb.tolist(), "labels": pl.tolist(), "scores": rng.random(len(pb)).tolist()}
        )
    return gt, preds


@pytest.mark.parametrize("seed", [0, 1])
def test_identical_to_pycocotools_on_a_random_set(seed: int) -> None:
    gt, preds = _random_case(seed, 50, 4)
    ours = coco_evaluate(gt, preds, ["a", "b", "c", "d"])
    _assert_same(ours, _pycocotools(copy.deepcopy(gt), preds, 4))
    assert 0.0 < ours.stats[0] < 1.0
    same = coco_evaluate(gt, preds, ["a", "b", "c", "d"], backend="pycocotools")
    np.testing.assert_allclose(same.stats, ours.stats, atol=1e-12)


def test_perfect_detection_is_one() -> None:
    gt = [{"boxes": [[0, 0, 100, 100]], "labels": [0]}]
    m = coco_metrics(gt, [{"boxes": [[0, 0, 100, 100]], "labels": [0], "scores": [0.5]}], ["x"])
    assert m["map"] == m["map_50"] == m["map_75"] == m["map_large"] == m["mar_1"] == 1.0
    assert m["map_small"] is None and m["map_medium"] is None  # no such ground truth: COCO's -1
    assert set(STAT_KEYS) <= set(m)


def test_hand_computed_ap_over_iou_thresholds() -> None:
    # the 0.9-score box has IoU 0.62 with the only ground truth, the 0.8-score box 1.0:
    # at IoU .50/.55/.60 the first is a TP (AP 1); from .65 on it is an FP and the second
    # the TP at precision 1/2 (AP 0.5): mAP = (3 * 1 + 7 * 0.5) / 10.
    gt = [{"boxes": [[0, 0, 100, 100]], "labels": [0]}]
    pr = [{"boxes": [[0, 0, 100, 62], [0, 0, 100, 100]], "labels": [0, 0], "scores": [0.9, 0.8]}]
    m = coco_metrics(gt, pr, ["x"])
    assert m["map"] == pytest.approx(0.65, abs=1e-9)
    assert m["map_50"] == pytest.approx(1.0) and m["map_75"] == pytest.approx(0.5)
    assert m["mar_1"] == pytest.approx(0.3)  # only the first box counts, a hit at 3 of 10 IoUs
    assert m["mar_10"] == pytest.approx(1.0)
    assert m["per_class"]["x"] == {
        "ap": pytest.approx(0.65), "ap50": pytest.approx(1.0), "ap75": pytest.approx(0.5),
        "ar_100": pytest.approx(1.0), "num_gt": 1, "num_pred": 2,
    }  # fmt: skip


def test_detection_inside_a_crowd_region_is_not_a_false_positive() -> None:
    gt = [{"boxes": [[0, 0, 50, 50], [100, 100, 200, 200]], "labels": [0, 0], "iscrowd": [0, 1]}]
    pr = [
        {"boxes": [[0, 0, 50, 50], [120, 120, 150, 150]], "labels": [0, 0], "scores": [0.8, 0.95]}
    ]
    assert coco_metrics(gt, pr, ["x"])["map"] == pytest.approx(1.0)
    not_crowd = [{**gt[0], "iscrowd": [0, 0]}]
    assert coco_metrics(not_crowd, pr, ["x"])["map"] < 0.5


def test_flags_from_box_meta_and_manifest_records() -> None:
    rec = Record(
        id="a", file="a.jpg", width=64, height=64, boxes=[[0, 0, 20, 20], [30, 30, 60, 60]],
        labels=[0, 0], meta={"box_meta": [{"difficult": 0}, {"difficult": 1}]},
    )  # fmt: skip
    pr = [{"boxes": [[0, 0, 20, 20]], "labels": [0], "scores": [0.9]}]
    assert coco_metrics([rec], pr, ["x"])["mar_100"] == pytest.approx(0.5)  # difficult counts
    ignored = coco_metrics([rec], pr, ["x"], crowd_flags=("iscrowd", "difficult"))
    assert ignored["mar_100"] == pytest.approx(1.0) and ignored["num_crowd"] == 1


def test_torch_tensors_and_empty_predictions() -> None:
    torch = pytest.importorskip("torch")
    gt = [
        {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "labels": torch.tensor([1])},
        {"boxes": [], "labels": []},
    ]
    none = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0), "scores": torch.zeros(0)}] * 2
    m = coco_metrics(gt, none, ["a", "b"])
    assert m["map"] == 0.0 and m["num_pred"] == 0
    assert m["per_class"]["a"]["ap"] is None and m["per_class"]["b"]["ap"] == 0.0


def test_bad_inputs_are_config_errors() -> None:
    gt = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}]
    with pytest.raises(ConfigError, match="1 ground-truth images but 2"):
        coco_metrics(gt, gt * 2, ["x"])
    with pytest.raises(ConfigError, match=r"label 3 outside the 1 classes \(0\.\.0\)"):
        coco_metrics(gt, [{"boxes": [[0, 0, 1, 1]], "labels": [3], "scores": [1.0]}], ["x"])
    with pytest.raises(ConfigError, match="1 boxes but 0 scores"):
        coco_metrics(gt, [{"boxes": [[0, 0, 1, 1]], "labels": [0], "scores": []}], ["x"])
    with pytest.raises(ConfigError, match="'segm' is not supported"):
        coco_metrics(gt, gt, ["x"], iou_type="segm")
    with pytest.raises(ConfigError, match="unknown COCO backend"):
        coco_metrics(gt, gt, ["x"], backend="tf")
