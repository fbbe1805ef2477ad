"""Box conventions. Internally every box is ``[x1, y1, x2, y2]`` in absolute pixels
(x to the right, y down, x2/y2 exclusive edges as floats). Conversions happen only at
import and export.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = list[float]


def xywh_to_xyxy(b: Sequence[float]) -> Box:
    """COCO ``[x, y, w, h]`` → ``[x1, y1, x2, y2]``."""
    x, y, w, h = (float(v) for v in b)
    return [x, y, x + w, y + h]


def xyxy_to_xywh(b: Sequence[float]) -> Box:
    x1, y1, x2, y2 = (float(v) for v in b)
    return [x1, y1, x2 - x1, y2 - y1]


def cxcywh_norm_to_xyxy(b: Sequence[float], width: int, height: int) -> Box:
    """YOLO ``[cx, cy, w, h]`` normalised to 0..1 → absolute xyxy."""
    cx, cy, w, h = (float(v) for v in b)
    return [
        (cx - w / 2) * width,
        (cy - h / 2) * height,
        (cx + w / 2) * width,
        (cy + h / 2) * height,
    ]


def xyxy_to_cxcywh_norm(b: Sequence[float], width: int, height: int) -> Box:
    x1, y1, x2, y2 = (float(v) for v in b)
    return [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]


def norm_xxyy_to_xyxy(
    xmin: float, xmax: float, ymin: float, ymax: float, width: int, height: int
) -> Box:
    """Open Images ``XMin, XMax, YMin, YMax`` (0..1) → absolute xyxy."""
    return [xmin * width, ymin * height, xmax * width, ymax * height]


def area(b: Sequence[float]) -> float:
    return max(0.0, float(b[2]) - float(b[0])) * max(0.0, float(b[3]) - float(b[1]))


def is_outside(b: Sequence[float], width: int, height: int, tol: float = 0.5) -> bool:
    """True when any edge lies outside the image by more than ``tol`` pixels."""
    return b[0] < -tol or b[1] < -tol or b[2] > width + tol or b[3] > height + tol


def clip(b: Sequence[float], width: int, height: int) -> Box:
    x1, y1, x2, y2 = (float(v) for v in b)
    return [
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    ]


def is_degenerate(b: Sequence[float], min_size: float = 1e-3) -> bool:
    """True for zero/negative width or height (after any clipping)."""
    return (float(b[2]) - float(b[0])) <= min_size or (float(b[3]) - float(b[1])) <= min_size


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0
