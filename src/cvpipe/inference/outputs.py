"""What one prediction becomes: a ``cvpipe predict`` row, its CSV lines, a serve response.

Each task answers with one :class:`Outputs` (:meth:`cvpipe.tasks.base.Task.outputs`), so
``cvpipe predict``, ``cvpipe serve`` and the serve client never branch on the task:

- :class:`ClassOutputs`: class probabilities → ``class``, ``confidence``, ``top_k``
  (classify); with ``counts=True`` the classes are counts and rows and responses add the
  predicted ``count`` (and a response its ``distribution`` over every count);
- :class:`BoxOutputs`: detections → ``detections`` [{box xyxy pixels, score, label}];
  CSV writes one line per box; responses add ``counts`` per class above the threshold.

Example:
    >>> out = ClassOutputs(counts=True)
    >>> out.csv_header(2)
    ['file', 'count', 'class', 'confidence', 'class1', 'prob1', 'class2', 'prob2', 'error']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cvpipe.engine.runs import ModelCard


@dataclass(frozen=True, slots=True)
class PredictOptions:
    """``cvpipe predict`` settings; each task's outputs use the ones that concern it.

    Attributes:
        top_k: classes listed per image (class probabilities).
        batch_size, workers: inference settings.
        draw: folder for images drawn with their boxes (detections), or None.
        score_thresh, nms_iou, max_detections: detector post-processing (None: the
            run's; the score threshold defaults to the run's counting threshold, else 0.5).
    """

    top_k: int = 3
    batch_size: int = 32
    workers: int = 0
    draw: str | None = None
    score_thresh: float | None = None
    nms_iou: float | None = None
    max_detections: int | None = None


class Outputs(ABC):
    """How a task's predictions are written out (module docstring)."""

    @abstractmethod
    def rows(
        self, predictor: Any, files: Sequence[str | Path], options: PredictOptions
    ) -> Iterator[dict[str, Any]]:
        """One ``cvpipe predict`` row per file, in input order (``{"file", "error"}`` for an
        unreadable one). Settings are applied (and checked) before the first row."""

    @abstractmethod
    def csv_header(self, top_k: int) -> list[str]:
        """The CSV columns of ``cvpipe predict --format csv``."""

    @abstractmethod
    def csv_lines(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The CSV lines of one row (an error row gives one line with its error)."""

    @abstractmethod
    def response(
        self,
        card: ModelCard,
        output: Any,
        width: int,
        height: int,
        *,
        top_k: int = 5,
        score_threshold: float = 0.5,
        min_score: float = 0.05,
    ) -> dict[str, Any]:
        """One raw model output as the JSON body ``cvpipe serve`` answers with."""

    @abstractmethod
    def response_row(self, file: str, response: dict[str, Any]) -> dict[str, Any]:
        """A server's response (:meth:`response` plus ``task``) as a ``cvpipe predict`` row."""


class ClassOutputs(Outputs):
    """Class probabilities (classify; ``counts=True``: count, whose classes are counts)."""

    def __init__(self, counts: bool = False) -> None:
        self.counts = counts

    def rows(
        self, predictor: Any, files: Sequence[str | Path], options: PredictOptions
    ) -> Iterator[dict[str, Any]]:
        k = min(options.top_k, len(predictor.card.classes))
        return self._rows(predictor, files, k, options.batch_size, options.workers)

    def _rows(
        self, pred: Any, files: Sequence[str | Path], top_k: int, batch_size: int, workers: int
    ) -> Iterator[dict[str, Any]]:
        for res in pred.predict_paths(files, batch_size=batch_size, workers=workers):
            if res.error is not None:
                yield {"file": str(res.path), "error": res.error}
                continue
            top = pred.top_k(res.output, top_k)
            row: dict[str, Any] = {"file": str(res.path)}
            if self.counts:
                row["count"] = int(top[0][0])
            row["class"] = top[0][0]
            row["confidence"] = round(top[0][1], 6)
            row["top_k"] = [{"class": c, "prob": round(p, 6)} for c, p in top]
            yield row

    def csv_header(self, top_k: int) -> list[str]:
        header = ["file", *(["count"] if self.counts else []), "class", "confidence"]
        return (
            header
            + [f"{kind}{i}" for i in range(1, top_k + 1) for kind in ("class", "prob")]
            + ["error"]
        )

    def csv_lines(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        flat = {key: v for key, v in row.items() if key != "top_k"}
        for i, t in enumerate(row.get("top_k", []), start=1):
            flat[f"class{i}"], flat[f"prob{i}"] = t["class"], t["prob"]
        return [flat]

    def response(
        self,
        card: ModelCard,
        output: Any,
        width: int,
        height: int,
        *,
        top_k: int = 5,
        score_threshold: float = 0.5,
        min_score: float = 0.05,
    ) -> dict[str, Any]:
        classes = card.classes
        probs = np.asarray(output, dtype=np.float64).reshape(-1)
        order = np.argsort(-probs, kind="stable")
        top = [
            {"label": classes[i], "score": round(float(probs[i]), 6)}
            for i in order[: max(1, top_k)]
        ]
        out: dict[str, Any] = {"label": top[0]["label"], "score": top[0]["score"], "top_k": top}
        if self.counts:
            out["count"] = as_count(top[0]["label"])
            out["distribution"] = [
                {"count": as_count(c), "prob": round(float(p), 6)}
                for c, p in zip(classes, probs, strict=True)
            ]
        return out

    def response_row(self, file: str, response: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {"file": file}
        if self.counts:
            row["count"] = response.get("count")
        row["class"] = response["label"]
        row["confidence"] = response["score"]
        row["top_k"] = [
            {"class": t["label"], "prob": t["score"]} for t in response.get("top_k", [])
        ]
        return row


def as_count(label: str) -> int | str:
    """A count class name as an int (``"3"`` → 3); other names stay strings."""
    try:
        return int(label)
    except ValueError:
        return label


class BoxOutputs(Outputs):
    """Detections: boxes with a class and a score each."""

    CSV_HEADER = ("file", "label", "score", "x1", "y1", "x2", "y2", "error")

    def rows(
        self, predictor: Any, files: Sequence[str | Path], options: PredictOptions
    ) -> Iterator[dict[str, Any]]:
        thr = options.score_thresh
        if thr is None:
            thr = (predictor.card.extra or {}).get("thresholds", {}).get("count_score", 0.5)
        predictor.set_postprocess(
            score_thresh=float(thr),
            nms_iou=options.nms_iou,
            detections_per_img=options.max_detections,
        )
        return self._rows(predictor, files, options.batch_size, options.workers, options.draw)

    def _rows(
        self,
        pred: Any,
        files: Sequence[str | Path],
        batch_size: int,
        workers: int,
        draw: str | None,
    ) -> Iterator[dict[str, Any]]:
        """One row per file: ``detections`` (box xyxy pixels, score, label) and ``count``;
        ``drawn`` when the image was written with its boxes into ``draw``."""
        from cvpipe.inference.detect import save_drawn

        classes = pred.card.classes
        used: set[str] = set()
        for res in pred.predict_paths(files, batch_size=batch_size, workers=workers):
            if res.error is not None:
                yield {"file": str(res.path), "error": res.error}
                continue
            det = res.output
            row: dict[str, Any] = {"file": str(res.path), "count": len(det["scores"])}
            row["detections"] = [
                {"box": [round(float(v), 2) for v in b], "score": round(float(sc), 6),
                 "label": classes[int(k)]}
                for b, sc, k in zip(det["boxes"], det["scores"], det["labels"], strict=True)
            ]  # fmt: skip
            if draw:
                name = f"{res.path.stem}.jpg"
                if name in used:
                    name = f"{res.path.stem}_{res.index}.jpg"
                used.add(name)
                save_drawn(res.path, det, classes, Path(draw) / name, pred.card.orientation)
                row["drawn"] = str(Path(draw) / name)
            yield row

    def csv_header(self, top_k: int) -> list[str]:
        return list(self.CSV_HEADER)

    def csv_lines(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in row:
            return [{"file": row["file"], "error": row["error"]}]
        lines = []
        for d in row.get("detections", []):
            x1, y1, x2, y2 = d["box"]
            lines.append({"file": row["file"], "label": d["label"], "score": d["score"],
                          "x1": x1, "y1": y1, "x2": x2, "y2": y2})  # fmt: skip
        return lines

    def response(
        self,
        card: ModelCard,
        output: Any,
        width: int,
        height: int,
        *,
        top_k: int = 5,
        score_threshold: float = 0.5,
        min_score: float = 0.05,
    ) -> dict[str, Any]:
        classes = card.classes
        boxes = np.asarray(_np(output.get("boxes", [])), dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(_np(output.get("scores", [])), dtype=np.float64).reshape(-1)
        labels = np.asarray(_np(output.get("labels", [])), dtype=np.int64).reshape(-1)
        order = np.argsort(-scores, kind="stable")
        dets = []
        counts = {c: 0 for c in classes}
        w, h = max(1, width), max(1, height)
        for i in order:
            s = float(scores[i])
            if s < min_score:
                continue
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            x1, x2 = min(max(x1, 0.0), w), min(max(x2, 0.0), w)
            y1, y2 = min(max(y1, 0.0), h), min(max(y2, 0.0), h)
            li = int(labels[i])
            name = classes[li] if 0 <= li < len(classes) else str(li)
            dets.append(
                {
                    "box": [round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)],
                    "box_norm": [
                        round(x1 / w, 6),
                        round(y1 / h, 6),
                        round(x2 / w, 6),
                        round(y2 / h, 6),
                    ],
                    "label": name,
                    "score": round(s, 6),
                }
            )
            if s >= score_threshold:
                counts[name] = counts.get(name, 0) + 1
        return {"detections": dets, "counts": counts, "score_threshold": score_threshold}

    def response_row(self, file: str, response: dict[str, Any]) -> dict[str, Any]:
        return {
            "file": file,
            "detections": response.get("detections", []),
            "counts": response.get("counts", {}),
        }


def _np(v: Any) -> Any:
    return v.detach().cpu().numpy() if hasattr(v, "detach") else v
