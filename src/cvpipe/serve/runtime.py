"""Inference back ends behind one interface: ONNX Runtime, or the PyTorch predictor.

A :class:`Runtime` turns decoded RGB images into JSON-ready predictions in three steps,
so the server can run the cheap, parallel part per request and batch the expensive one:

1. :meth:`Runtime.prepare` (per image, any thread): resize/crop/normalise → model input.
2. :meth:`Runtime.run` (one call per micro-batch): inputs → raw outputs.
3. :func:`format_prediction` (per image): raw output → the response dict of the task
   (the task's :class:`~cvpipe.inference.outputs.Outputs`).

:func:`load_runtime` picks the back end: ``RUN/model.onnx`` (or a bare ``.onnx`` file
exported by ``cvpipe export``) → :class:`OnnxRuntime`; otherwise the run's PyTorch
predictor (:class:`TorchRuntime`; a task whose model takes images whole, such as
detect, gets them decoded at full size and unbatched: ``Task.whole_images``).

Response shapes (``format_prediction``):

- classify: ``label``, ``score``, ``top_k`` [{label, score}].
- count: additionally ``count`` (int of the top label) and ``distribution``
  [{count, prob}] over every class.
- detect: ``detections`` [{box [x1, y1, x2, y2] pixels of the original image,
  box_norm (the same divided by width/height), label, score}] with score >= min_score,
  best first; ``counts`` {label: n} for score >= score_threshold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cvpipe.engine.runs import ModelCard
from cvpipe.errors import CheckpointError
from cvpipe.models.preprocess import Preprocess
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)

_PIL_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def numpy_transform(pre: Preprocess, im: Image.Image) -> np.ndarray:
    """The eval transform with PIL and NumPy only (no torch): float32 ``[3, S, S]``.

    Same steps as :meth:`Preprocess.eval_transform` (shorter side → ``resize_size``,
    centre crop ``input_size``, scale to [0, 1], normalise); PIL's antialiased resize
    differs from torchvision's by at most a few grey levels.
    """
    w, h = im.size
    r = pre.resize_size
    nw, nh = (r, max(1, int(r * h / w))) if w <= h else (max(1, int(r * w / h)), r)
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), _PIL_RESAMPLE[pre.interpolation])
    s = pre.input_size
    left = int(round((nw - s) / 2.0))
    top = int(round((nh - s) / 2.0))
    if nw < s or nh < s:  # torchvision pads with zeros when the crop is larger
        canvas = Image.new("RGB", (max(nw, s), max(nh, s)))
        canvas.paste(im, (max(0, -left), max(0, -top)))
        im, left, top = canvas, max(0, left), max(0, top)
    im = im.crop((left, top, left + s, top + s))
    arr = np.asarray(im, dtype=np.float32) * (1.0 / 255.0)
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(((arr - mean) / std).transpose(2, 0, 1))


class Runtime:
    """One loaded model ready for requests.

    Attributes:
        card: the model card (task, classes, preprocessing).
        backend: ``onnxruntime`` or ``pytorch``.
        batchable: whether :meth:`run` gains from several inputs at once.
        draft: JPEG decode size hint (the resize size), or None for full decodes.
    """

    backend = "none"
    batchable = True

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        whole = get_task(card.task).whole_images
        self.draft: int | None = None if whole else int(card.preprocess.resize_size)

    def prepare(self, im: Image.Image) -> Any:
        """Model input for one RGB image (thread-safe)."""
        raise NotImplementedError

    def run(self, inputs: Sequence[Any]) -> list[Any]:
        """Raw outputs for prepared inputs, in order."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Card fields shown by ``GET /v1/model``."""
        c = self.card
        return {
            "task": c.task,
            "classes": list(c.classes),
            "model": c.model,
            "input_size": c.input_size,
            "preprocess": c.preprocess.to_json(),
            "metrics": c.metrics,
            "backend": self.backend,
            "export": (c.extra or {}).get("onnx"),
            "thresholds": (c.extra or {}).get("thresholds") or {},
        }


class OnnxRuntime(Runtime):
    """ONNX Runtime session on a ``cvpipe export`` graph (``input`` → ``probs``).

    Args:
        path: the ``.onnx`` file.
        card: its model card (default: read from the file's metadata).
        threads: intra-op threads (0: ONNX Runtime's default).
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, card: ModelCard | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        from cvpipe.export.onnx import INPUT_NAME, OUTPUT_NAME, read_onnx_card

        if card is None:
            card = ModelCard.from_json(read_onnx_card(path))
        super().__init__(card)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CheckpointError(f"{path}: ONNX Runtime cannot load this model: {exc}") from None
        self.path = Path(path)
        self._in, self._out = INPUT_NAME, OUTPUT_NAME

    def prepare(self, im: Image.Image) -> np.ndarray:
        return numpy_transform(self.card.preprocess, im)

    def run(self, inputs: Sequence[Any]) -> list[Any]:
        x = np.stack(list(inputs)).astype(np.float32, copy=False)
        probs = self.session.run([self._out], {self._in: x})[0]
        return list(np.asarray(probs, dtype=np.float32))


class TorchRuntime(Runtime):
    """A PyTorch predictor (:mod:`cvpipe.inference`) behind the runtime interface.

    Classify/count predictors take preprocessed tensors; the predictor of a task whose
    model takes images whole (``Task.whole_images``: detect) is expected to offer
    ``predict_images(images) -> [{"boxes": [K, 4] xyxy pixels of that image, "scores":
    [K], "labels": [K] dataset indices}, ...]`` (it resizes internally), so its inputs
    are the RGB images themselves.

    Args:
        predictor: a :class:`~cvpipe.inference.predictor.BasePredictor` (or any object
            with ``card``, and ``transform``/``infer`` or ``predict_images`` as above).
    """

    backend = "pytorch"

    def __init__(self, predictor: Any) -> None:
        super().__init__(predictor.card)
        self.predictor = predictor
        self.whole_images = get_task(self.card.task).whole_images
        self.batchable = not self.whole_images

    def prepare(self, im: Image.Image) -> Any:
        if self.whole_images:
            return im
        return self.predictor.transform(im)

    def run(self, inputs: Sequence[Any]) -> list[Any]:
        import torch

        if self.whole_images:
            return list(self.predictor.predict_images(list(inputs)))
        x = torch.stack(list(inputs)).to(self.predictor.device)
        with torch.inference_mode():
            return [np.asarray(o, dtype=np.float32) for o in self.predictor.infer(x)]


def load_runtime(
    source: str | Path, *, threads: int = 0, device: str = "cpu", prefer_onnx: bool = True
) -> Runtime:
    """Load what ``cvpipe serve SOURCE`` serves.

    Args:
        source: a run directory (``model.onnx`` used when present) or a ``.onnx`` file.
        threads: ONNX Runtime intra-op threads (0: default); also torch's when > 0.
        device: torch device for the PyTorch fallback.
        prefer_onnx: use ``RUN/model.onnx`` when it exists.

    Raises:
        CheckpointError: nothing servable at ``source``.
    """
    p = Path(source)
    if p.is_file() and p.suffix == ".onnx":
        return OnnxRuntime(p, threads=threads)
    if not p.is_dir():
        raise CheckpointError(f"{p}: not a run directory or an .onnx file")
    card_path = p / "model_card.json"
    if prefer_onnx and (p / "model.onnx").is_file():
        card = ModelCard.load(card_path) if card_path.is_file() else None
        return OnnxRuntime(p / "model.onnx", card=card, threads=threads)
    from cvpipe.inference.predictor import BasePredictor

    if threads:
        import torch

        torch.set_num_threads(threads)
    return TorchRuntime(BasePredictor.from_run(p, device=device))


def format_prediction(
    card: ModelCard,
    output: Any,
    width: int,
    height: int,
    *,
    top_k: int = 5,
    score_threshold: float = 0.5,
    min_score: float = 0.05,
) -> dict[str, Any]:
    """Turn one raw output into the JSON response of the card's task (see module doc)."""
    return (
        get_task(card.task)
        .outputs()
        .response(
            card,
            output,
            width,
            height,
            top_k=top_k,
            score_threshold=score_threshold,
            min_score=min_score,
        )
    )


def timed_run(runtime: Runtime, inputs: Sequence[Any]) -> tuple[list[Any], float]:
    """``runtime.run(inputs)`` and its duration in seconds."""
    t0 = time.perf_counter()
    out = runtime.run(inputs)
    return out, time.perf_counter() - t0
