"""Thumbnail grids (PNG bytes) with optional boxes and captions, drawn with Pillow.

Used for the per-class sample grids of ``cvpipe eda`` and for prediction samples in
evaluation reports. Images are decoded at reduced size where the format allows it
(JPEG draft), so a grid of 8 photos costs little even when the photos are large.

Example:
    >>> tiles = [thumbnail("a.jpg", 96, boxes=[[4, 4, 40, 40]], box_labels=["cat"])]  # doctest: +SKIP
    >>> png = grid(tiles, columns=8)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cvpipe.images import ImageReadError, decode

_BG = (235, 235, 235)
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190), (0, 128, 128),
]  # fmt: skip


def color(i: int) -> tuple[int, int, int]:
    """A distinct colour for class index ``i`` (cycles after 10)."""
    return _PALETTE[i % len(_PALETTE)]


def thumbnail(
    path: str | Path,
    size: int = 96,
    *,
    boxes: Sequence[Sequence[float]] | None = None,
    box_labels: Sequence[str] | None = None,
    box_classes: Sequence[int] | None = None,
    source_size: tuple[int, int] | None = None,
    caption: str | None = None,
    orientation: int | None = None,
) -> Image.Image:
    """A ``size``×``size`` tile: the image fitted inside, boxes drawn, caption at the bottom.

    Args:
        path: image file; an unreadable one gives a grey tile saying so.
        size: tile side in pixels.
        boxes: xyxy boxes in pixels of the original image.
        box_labels: text drawn at each box's top-left corner.
        box_classes: class index per box, for the box colour.
        source_size: (width, height) the boxes refer to (default: the file's real size).
        caption: short text on the tile's bottom edge.
        orientation: the record's EXIF orientation (``Record.orientation``): the image is
            turned as the record's boxes and ``source_size`` expect.

    Returns:
        An RGB :class:`PIL.Image.Image` of ``size``×``size``.
    """
    tile = Image.new("RGB", (size, size), _BG)
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default()
    try:
        im = decode(path, "RGB", draft=(size, size), orientation=orientation)
    except ImageReadError as exc:
        draw.text((4, size // 2 - 6), exc.kind, fill=(180, 0, 0), font=font)
        return tile
    try:
        src_w, src_h = source_size or _real_size(path)
        scale = min(size / im.width, size / im.height)  # fit inside, small images enlarged
        fit = im.resize(
            (max(1, round(im.width * scale)), max(1, round(im.height * scale))),
            Image.Resampling.BILINEAR,
        )
    finally:
        im.close()
    ox, oy = (size - fit.width) // 2, (size - fit.height) // 2
    tile.paste(fit, (ox, oy))
    sx, sy = fit.width / max(src_w, 1), fit.height / max(src_h, 1)
    for j, b in enumerate(boxes or []):
        c = color(box_classes[j] if box_classes is not None and j < len(box_classes) else 0)
        x1, y1, x2, y2 = (ox + b[0] * sx, oy + b[1] * sy, ox + b[2] * sx, oy + b[3] * sy)
        draw.rectangle([x1, y1, max(x1, x2), max(y1, y2)], outline=c, width=1)
        if box_labels is not None and j < len(box_labels):
            draw.text((x1 + 1, y1), str(box_labels[j]), fill=c, font=font)
    if caption:
        draw.rectangle([0, size - 12, size, size], fill=(255, 255, 255))
        draw.text((2, size - 12), caption[: size // 6], fill=(0, 0, 0), font=font)
    return tile


def _real_size(path: str | Path) -> tuple[int, int]:
    """Full-resolution size of ``path`` (the decoded image may be a reduced JPEG draft)."""
    with Image.open(path) as raw:
        return raw.size


def grid(tiles: Sequence[Image.Image], columns: int = 8, gap: int = 4) -> bytes:
    """Lay tiles out in rows of ``columns`` and return PNG bytes (one blank tile if empty)."""
    if not tiles:
        tiles = [Image.new("RGB", (32, 32), _BG)]
    w, h = tiles[0].size
    cols = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new(
        "RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), (255, 255, 255)
    )
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet.paste(t, (c * (w + gap), r * (h + gap)))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
