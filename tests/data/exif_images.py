"""Tiny JPEGs carrying an EXIF orientation tag, with a white box at a known place."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 64, 40
BOX = [8.0, 4.0, 28.0, 16.0]  # white block in stored pixels, xyxy


def exif_bytes(value: int) -> bytes:
    """A minimal EXIF block whose Orientation is ``value`` (LONG, so 65537 fits too)."""
    entry = struct.pack("<HHII", 0x0112, 4, 1, value)
    return b"Exif\x00\x00II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


def write_oriented(path: Path, value: int | None, size: tuple[int, int] = (W, H)) -> Path:
    """A black JPEG with a white block at BOX (scaled to ``size``) and EXIF ``value``.

    Valid values are written the documented way (``Image.Exif``); values that do not fit
    an EXIF SHORT are written as a LONG.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    sx, sy = w / W, h / H
    x1, y1, x2, y2 = (
        round(BOX[0] * sx),
        round(BOX[1] * sy),
        round(BOX[2] * sx),
        round(BOX[3] * sy),
    )
    arr[y1:y2, x1:x2] = 255
    arr[0, 0] = (255, 0, 0)  # a corner marker makes every orientation distinct
    im = Image.fromarray(arr, "RGB")
    if value is None:
        im.save(path, quality=95)
    elif 0 <= value <= 65535:
        exif = Image.Exif()
        exif[0x0112] = value
        im.save(path, quality=95, exif=exif)
    else:
        im.save(path, quality=95, exif=exif_bytes(value))
    return path


def white_box(im: Image.Image) -> list[float]:
    """xyxy bounding box of the white block of a decoded image."""
    a = np.asarray(im.convert("L")) > 128
    ys, xs = np.nonzero(a)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
