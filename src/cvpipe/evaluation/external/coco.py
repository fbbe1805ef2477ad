"""The built-in COCO benchmark run through its converted PyTorch model, without OpenCV.

``cvpipe eval --benchmark-model ssd_mobilenet_v2_coco`` runs TensorFlow's frozen graph
through OpenCV DNN when the installed OpenCV can read TensorFlow graphs. OpenCV 5 removed
that importer (and OpenCV may be missing altogether); then the same graph, converted once
into ``ssd300_mobilenet_v2`` (:mod:`cvpipe.models.coco_ssd`, cached in
``$CVPIPE_HOME/coco``), runs here instead. Its detections agree with OpenCV DNN's
(``benchmarks/coco_ssd_parity.py``), so the benchmark's figures do not depend on which
back end ran it; the card records which one did (``benchmark.backend``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cvpipe.evaluation.external.detectors import ExternalDetector
from cvpipe.inference.detect import Detections

log = logging.getLogger(__name__)


def opencv_reads_tensorflow() -> bool:
    """Whether OpenCV is installed and still has its TensorFlow importer (OpenCV 4.x)."""
    try:
        import cv2
    except ImportError:
        return False
    return getattr(getattr(cv2, "dnn", None), "readNetFromTensorflow", None) is not None


class ConvertedCocoDetector(ExternalDetector):
    """TF's COCO SSD-MobileNetV2 frozen graph, converted to ``ssd300_mobilenet_v2`` and run
    by PyTorch on CPU (same post-processing as OpenCV DNN's export: score > 0.01, NMS IoU
    0.6 per class over each class's top 100, at most 100 detections)."""

    def __init__(
        self,
        graph: str | Path,
        *,
        classes: Sequence[str],
        mapping: Mapping[str, str],
        labels: Mapping[int, str],
        name: str,
    ) -> None:
        from cvpipe.models.coco_ssd import NUM_COCO_CHANNELS, build_coco_model, coco_state
        from cvpipe.models.detector import Detector

        state, info = coco_state(graph)
        model = build_coco_model()
        model.load_state_dict(state)
        self.detector = Detector(
            model, name="ssd300_mobilenet_v2", num_classes=NUM_COCO_CHANNELS - 1, input_size=300
        ).eval()
        record = {"backend": "torch (converted from the TF graph)", "model": str(graph), **info}
        super().__init__(name, labels, mapping, classes, 300, record)
        log.info(
            "benchmark %s: OpenCV cannot read TF graphs here; running the converted model", name
        )

    @torch.no_grad()
    def detect(self, images: list[Image.Image]) -> list[Detections]:
        tensors = [
            torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255.0
            for im in images
        ]
        out = self.detector(tensors)
        results = []
        for im, det in zip(images, out, strict=True):
            assert isinstance(det, dict)
            ids = det["labels"].numpy() + self.detector.label_offset  # COCO category ids
            results.append(self.finish(det["boxes"].numpy(), det["scores"].numpy(), ids, im.size))
        return results
