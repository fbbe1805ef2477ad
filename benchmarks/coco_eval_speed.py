"""COCO evaluation speed: cvpipe's coco_metrics (faster-coco-eval) vs pycocotools COCOeval.

Builds a synthetic detection set (images of 640x480, 10 classes, ~7 ground-truth boxes
with 5% crowd regions and ~100 detections per image: jittered hits, misplaced labels and
random false positives, as a real detector's top-100 output looks), then evaluates it

- with cvpipe: ``cvpipe.metrics.detection.coco_evaluate`` on cvpipe records (per-image
  arrays, xyxy pixels, dataset labels), conversion to COCO dicts included in the time;
- with pycocotools as its README uses it: ``COCO`` from the ground-truth dict,
  ``loadRes`` on the detection list, ``evaluate / accumulate / summarize``, starting
  from ready-made COCO dicts (its conversion is not timed),

in the same process one after the other, checks that the 12 summary numbers and the
precision/recall arrays agree to 1e-6, and prints the speed ratio.

    python benchmarks/coco_eval_speed.py            # 5000 images, ~500k detections
    python benchmarks/coco_eval_speed.py --quick    # 500 images
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import time
from typing import Any

import numpy as np
from common import parser, report

W, H = 640, 480
CLASSES = [f"class_{i}" for i in range(10)]


def make_set(
    n_images: int, dets_per_image: int, seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-image ground truth and predictions in cvpipe's convention."""
    rng = np.random.default_rng(seed)

    def boxes(n: int) -> np.ndarray:
        wh = np.exp(rng.uniform(np.log(6), np.log(400), (n, 2)))
        xy = rng.uniform(0, 1, (n, 2)) * np.maximum([W, H] - wh, 1)
        return np.concatenate([xy, np.minimum(xy + wh, [W, H])], 1)

    gt, preds = [], []
    for _ in range(n_images):
        n = int(rng.integers(0, 15))
        gb, gl = boxes(n), rng.integers(0, len(CLASSES), n)
        crowd = (rng.random(n) < 0.05).astype(np.int64)
        gt.append({"boxes": gb, "labels": gl, "iscrowd": crowd, "width": W, "height": H})
        m = int(rng.integers(dets_per_image // 2, dets_per_image * 3 // 2 + 1))
        k = min(m, 3 * n)
        src = rng.integers(0, max(n, 1), k) if n else np.zeros(0, dtype=np.int64)
        hit = (
            gb[src] + rng.normal(0, 1, (k, 4)) * (0.08 * (gb[src, 2:] - gb[src, :2])).repeat(2, 1)
            if n
            else np.zeros((0, 4))
        )
        hit_labels = (
            np.where(rng.random(k) < 0.85, gl[src], rng.integers(0, len(CLASSES), k))
            if n
            else np.zeros(0, dtype=np.int64)
        )
        pb = np.concatenate([hit, boxes(m - len(hit))])
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1.0)
        pl = np.concatenate([hit_labels, rng.integers(0, len(CLASSES), m - len(hit))])
        scores = np.concatenate([rng.beta(5, 2, len(hit)), rng.beta(2, 5, m - len(hit))])
        preds.append({"boxes": pb, "labels": pl, "scores": scores})
    return gt, preds


def coco_dicts(
    gt: list[dict[str, Any]], preds: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The same set as plain COCO dicts (what a pycocotools user would have on disk)."""
    images, anns, dets = [], [], []
    for i, (g, p) in enumerate(zip(gt, preds, strict=True), start=1):
        images.append({"id": i, "width": W, "height": H})
        for b, label, c in zip(
            g["boxes"].tolist(), g["labels"].tolist(), g["iscrowd"].tolist(), strict=True
        ):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": label + 1,
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": c})  # fmt: skip
        for b, label, s in zip(
            p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist(), strict=True
        ):
            dets.append({"image_id": i, "category_id": label + 1,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})  # fmt: skip
    cats = [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]
    return {"images": images, "annotations": anns, "categories": cats}, dets


def run_pycocotools(gt_dict: dict[str, Any], dets: list[dict[str, Any]]) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    n_images = 500 if args.quick else 5000
    from cvpipe.metrics.detection import coco_evaluate

    gt, preds = make_set(n_images, 100)
    gt_dict, dets = coco_dicts(gt, preds)
    n_dets, n_gt = len(dets), len(gt_dict["annotations"])
    print(f"{n_images} images, {n_gt} ground-truth boxes, {n_dets} detections", flush=True)

    t0 = time.perf_counter()
    ours = coco_evaluate(gt, preds, CLASSES)
    t_cvpipe = time.perf_counter() - t0
    print(f"cvpipe coco_metrics (faster-coco-eval): {t_cvpipe:7.2f} s", flush=True)

    gt_copy, dets_copy = copy.deepcopy(gt_dict), copy.deepcopy(dets)  # loadRes edits its input
    t0 = time.perf_counter()
    ref = run_pycocotools(gt_copy, dets_copy)
    t_ref = time.perf_counter() - t0
    print(f"pycocotools COCOeval:                   {t_ref:7.2f} s", flush=True)

    stats_diff = float(np.max(np.abs(ours.stats - np.asarray(ref.stats))))
    prec_diff = float(np.max(np.abs(ours.precision - ref.eval["precision"])))
    rec_diff = float(np.max(np.abs(ours.recall - ref.eval["recall"])))
    if max(stats_diff, prec_diff, rec_diff) > 1e-6:
        raise SystemExit(
            f"numbers differ: stats {stats_diff:.2e}, precision {prec_diff:.2e}, recall {rec_diff:.2e}"
        )
    speedup = t_ref / t_cvpipe
    print(
        f"identical to 1e-6 (max |diff| stats {stats_diff:.1e}, precision {prec_diff:.1e}); speedup {speedup:.1f}x"
    )
    report(
        "coco_eval_speed",
        {
            "speedup": round(speedup, 1),
            "images": n_images,
            "detections": n_dets,
            "max_abs_diff": f"{max(stats_diff, prec_diff, rec_diff):.1e}",
        },
        {
            "cvpipe_s": round(t_cvpipe, 3),
            "pycocotools_s": round(t_ref, 3),
            "ground_truth_boxes": n_gt,
            "classes": len(CLASSES),
            "map": round(float(ours.stats[0]), 6),
            "map_50": round(float(ours.stats[1]), 6),
            "cpus": os.cpu_count(),
        },
    )


if __name__ == "__main__":
    main()
