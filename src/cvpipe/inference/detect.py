"""Batched inference for detectors: image files or PIL images in, boxes out.

Every detection predictor (a trained run's :class:`DetectionPredictor`, or a benchmark
model from :mod:`cvpipe.evaluation.external`) offers the same interface:

- ``card``: a :class:`~cvpipe.engine.runs.ModelCard` with ``task == "detect"`` and the
  class names its labels index;
- ``predict_images(images)``: RGB PIL images → one dict per image, ``{"boxes": float32
  [K, 4] xyxy pixels of that image, "scores": float32 [K], "labels": int64 [K] class
  indices}``, best score first (what ``cvpipe serve`` calls);
- ``predict_paths(paths, batch_size, workers)``: streams :class:`PathResult` rows in
  input order, ``output`` being that dict with boxes in pixels of the *original* file
  (files are decoded at reduced size where JPEG allows it, and boxes scaled back);
  unreadable files get ``error`` instead;
- ``set_postprocess(score_thresh=, nms_iou=, detections_per_img=)``.

Subclasses implement :meth:`DetectStream.detect` only.

Example:
    >>> p = DetectionPredictor.from_run("runs/planes")  # doctest: +SKIP
    >>> p.set_postprocess(score_thresh=0.5)  # doctest: +SKIP
    >>> for r in p.predict_paths(["a.jpg"]):  # doctest: +SKIP
    ...     print(r.path, r.output["boxes"], [p.card.classes[i] for i in r.output["labels"]])
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cvpipe.errors import ConfigError
from cvpipe.images import ImageReadError, decode, probe
from cvpipe.inference.predictor import BasePredictor, PathResult, file_orientations, resolve_device
from cvpipe.orientation import Orient, oriented_size

if TYPE_CHECKING:
    import torch

    from cvpipe.engine.runs import ModelCard
    from cvpipe.models.detector import Detector

log = logging.getLogger(__name__)

Detections = dict[str, np.ndarray]


def empty_detections() -> Detections:
    """No boxes: ``boxes [0, 4]``, ``scores [0]``, ``labels [0]``."""
    return {
        "boxes": np.zeros((0, 4), dtype=np.float32),
        "scores": np.zeros(0, dtype=np.float32),
        "labels": np.zeros(0, dtype=np.int64),
    }


def as_detections(boxes: Any, scores: Any, labels: Any) -> Detections:
    """Arrays with the documented dtypes and shapes, sorted by decreasing score."""

    def arr(v: Any, dtype: Any) -> np.ndarray:
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        return np.asarray(v, dtype=dtype)

    b = arr(boxes, np.float32).reshape(-1, 4)
    s = arr(scores, np.float32).reshape(-1)
    lab = arr(labels, np.int64).reshape(-1)
    order = np.argsort(-s, kind="stable")
    return {"boxes": b[order], "scores": s[order], "labels": lab[order]}


def scale_boxes(det: Detections, sx: float, sy: float) -> Detections:
    """The detections with x multiplied by ``sx`` and y by ``sy``."""
    if sx == 1.0 and sy == 1.0:
        return det
    boxes = det["boxes"] * np.array([sx, sy, sx, sy], dtype=np.float32)
    return {**det, "boxes": boxes}


def filter_detections(
    det: Detections,
    *,
    score_thresh: float = 0.0,
    nms_iou: float | None = None,
    max_detections: int | None = None,
) -> Detections:
    """Drop boxes below ``score_thresh``, apply class-wise NMS at ``nms_iou`` (None: none),
    keep the ``max_detections`` best."""
    keep = det["scores"] >= score_thresh
    out = {k: v[keep] for k, v in det.items()}
    if nms_iou is not None and len(out["scores"]) > 1:
        import torch
        from torchvision.ops import batched_nms

        idx = batched_nms(
            torch.from_numpy(out["boxes"].astype(np.float32)),
            torch.from_numpy(out["scores"].astype(np.float32)),
            torch.from_numpy(out["labels"].astype(np.int64)),
            float(nms_iou),
        ).numpy()
        out = {k: v[idx] for k, v in out.items()}
    out = as_detections(out["boxes"], out["scores"], out["labels"])
    if max_detections is not None:
        out = {k: v[: max(0, int(max_detections))] for k, v in out.items()}
    return out


def check_postprocess(
    score_thresh: float | None, nms_iou: float | None, detections_per_img: int | None
) -> None:
    """Raise ConfigError for out-of-range post-processing settings."""
    if score_thresh is not None and not 0.0 <= score_thresh < 1.0:
        raise ConfigError(f"score threshold {score_thresh}: must be in [0, 1)")
    if nms_iou is not None and not 0.0 < nms_iou <= 1.0:
        raise ConfigError(f"NMS IoU {nms_iou}: must be in (0, 1]")
    if detections_per_img is not None and detections_per_img < 1:
        raise ConfigError(f"max detections {detections_per_img}: must be at least 1")


def draw_detections(
    image: Image.Image, det: Detections, classes: Sequence[str], width: int = 2
) -> Image.Image:
    """A copy of ``image`` with each box drawn in its class colour and labelled
    ``class score`` (boxes in pixels of ``image``)."""
    from PIL import ImageDraw

    from cvpipe.report.gallery import color

    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    for b, s, k in zip(det["boxes"], det["scores"], det["labels"], strict=True):
        c = color(int(k))
        x1, y1, x2, y2 = (float(v) for v in b)
        draw.rectangle([x1, y1, max(x1, x2), max(y1, y2)], outline=c, width=width)
        name = classes[int(k)] if 0 <= int(k) < len(classes) else str(int(k))
        draw.text((x1 + 2, y1 + 1), f"{name} {float(s):.2f}", fill=c)
    return out


def save_drawn(
    path: str | Path,
    det: Detections,
    classes: Sequence[str],
    dest: str | Path,
    orientation: Orient = None,
) -> Path:
    """Decode ``path`` at full size, draw ``det`` on it, write JPEG ``dest`` atomically.

    ``orientation`` must be the one the detections were predicted with (the predictor's
    ``card.orientation``), so the boxes land on the pixels they were found in.

    Raises:
        ImageReadError: the source image cannot be decoded.
    """
    from cvpipe.io import atomic_open

    drawn = draw_detections(decode(path, "RGB", orientation=orientation), det, classes)
    with atomic_open(dest, "wb") as f:
        drawn.save(f, format="JPEG", quality=90)
    return Path(dest)


class DetectStream:
    """Decoding, batching and box rescaling shared by every detection predictor.

    Subclasses set ``card`` and ``draft`` (JPEG decode size hint, or None for full
    decodes) and implement :meth:`detect`.
    """

    card: ModelCard
    draft: Any = None  # int side for JPEG draft decodes, or None

    def detect(self, images: list[Image.Image]) -> list[Detections]:  # pragma: no cover
        """Detections for RGB images, boxes in pixels of each given image."""
        raise NotImplementedError

    def set_postprocess(
        self,
        *,
        score_thresh: float | None = None,
        nms_iou: float | None = None,
        detections_per_img: int | None = None,
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_images(self, images: Sequence[Image.Image]) -> list[Detections]:
        """One detections dict per PIL image (module docstring); [] for no images."""
        if not images:
            return []
        return self.detect([im.convert("RGB") if im.mode != "RGB" else im for im in images])

    def predict_paths(
        self,
        paths: Sequence[str | Path],
        batch_size: int = 8,
        workers: int = 0,
        orientations: Sequence[Orient] | None = None,
    ) -> Iterator[PathResult]:
        """Predict many files, one :class:`PathResult` per file in input order.

        Boxes are in pixels of the original file even when it was decoded at reduced
        size (of the oriented file when the decode turned it). Memory stays bounded by
        ``batch_size`` whatever the number of files.

        Args:
            paths: image files.
            batch_size: images per forward pass.
            workers: DataLoader worker processes decoding in parallel (0: this process).
            orientations: per file, how to orient its decode (dataset records:
                ``Record.orientation``); default: the card's ``orientation``.
        """
        from torch.utils.data import DataLoader

        if not paths:
            return
        default = getattr(getattr(self, "card", None), "orientation", None)
        orients = file_orientations(paths, orientations, default)
        dataset: Any = _DecodeDataset(list(paths), self.draft, orients)
        loader: DataLoader[Any] = DataLoader(
            dataset,
            batch_size=max(1, batch_size),
            shuffle=False,
            num_workers=max(0, workers),
            collate_fn=list,
        )
        for batch in loader:
            good = [b for b in batch if b[3] is None]
            outs = self.detect([b[1] for b in good]) if good else []
            by_index = {}
            for (i, im, (w, h), _), det in zip(good, outs, strict=True):
                by_index[i] = scale_boxes(det, w / im.width, h / im.height)
            for i, _, _, err in batch:
                if err is not None:
                    yield PathResult(i, Path(paths[i]), None, err)
                else:
                    yield PathResult(i, Path(paths[i]), by_index[i], None)


class _DecodeDataset:
    """index → (index, RGB image | None, original (w, h), error | None)."""

    def __init__(self, paths: list[str | Path], draft: int | None, orients: list[Orient]) -> None:
        self.paths = paths
        self.draft = draft
        self.orients = orients

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Image.Image | None, tuple[int, int], str | None]:
        try:
            o = self.orients[i]
            info = probe(self.paths[i], exif=o == "exif")
            size = oriented_size(info.width, info.height, info.orientation if o == "exif" else o)
            d = (self.draft, self.draft) if self.draft else None
            im = decode(self.paths[i], "RGB", draft=d, orientation=o)
            return i, im, size, None
        except ImageReadError as exc:
            return i, None, (0, 0), f"{exc.kind}: {exc.message}"


class DetectionPredictor(DetectStream, BasePredictor):
    """A trained cvpipe detector (:class:`~cvpipe.models.detector.Detector`) as a predictor.

    The detector takes whole images in 0..1 and resizes and normalises them itself, so
    the only preprocessing here is PIL → float tensor; files are JPEG-draft decoded at no
    less than the detector's input size.

    Args:
        model: the Detector (put in eval mode here).
        card: the run's model card (``task == "detect"``).
        device: ``cpu``, ``cuda`` or ``auto``.

    Example:
        >>> p = DetectionPredictor(detector, card)  # doctest: +SKIP
        >>> p.predict_images([pil])[0]["boxes"].shape  # doctest: +SKIP
        (3, 4)
    """

    def __init__(self, model: torch.nn.Module, card: ModelCard, device: str = "cpu") -> None:
        import torch
        from torchvision.transforms import v2 as T

        self.card = card
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.draft = int(card.input_size)
        self.transform = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])

    @property
    def detector(self) -> Detector:
        return self.model  # type: ignore[return-value]

    def set_postprocess(
        self,
        *,
        score_thresh: float | None = None,
        nms_iou: float | None = None,
        detections_per_img: int | None = None,
    ) -> None:
        """Change the detector's score threshold, NMS IoU or maximum detections."""
        check_postprocess(score_thresh, nms_iou, detections_per_img)
        self.detector.set_postprocess(
            score_thresh=score_thresh, nms_iou=nms_iou, detections_per_img=detections_per_img
        )

    def postprocess_settings(self) -> dict[str, float]:
        return self.detector.postprocess_settings()

    def detect(self, images: list[Image.Image]) -> list[Detections]:
        import torch

        xs = [self.transform(im).to(self.device) for im in images]
        with torch.inference_mode():
            outs = self.model(xs)
        return [as_detections(o["boxes"], o["scores"], o["labels"]) for o in outs]

    def infer(self, x: torch.Tensor) -> list[Any]:
        """A batch of same-size tensors in 0..1 → detections (BasePredictor interface)."""
        import torch

        with torch.inference_mode():
            outs = self.model(list(x.to(self.device)))
        return [as_detections(o["boxes"], o["scores"], o["labels"]) for o in outs]
