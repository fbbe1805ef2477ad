"""EXIF orientation: which values are valid, how pixels, sizes and boxes turn with it.

Cameras store a photo's pixels as the sensor read them and write the EXIF tag
``Orientation`` (0x0112) saying how a viewer should turn them (TIFF 6.0 / EXIF 2.3):

====  ==========================  ================================
value  stored pixels → shown as    PIL operation
====  ==========================  ================================
1      as stored                   none
2      mirrored left-right         ``FLIP_LEFT_RIGHT``
3      turned 180°                 ``ROTATE_180``
4      mirrored top-bottom         ``FLIP_TOP_BOTTOM``
5      transposed                  ``TRANSPOSE``
6      turned 90° clockwise        ``ROTATE_270``
7      transversed                 ``TRANSVERSE``
8      turned 90° anticlockwise    ``ROTATE_90``
====  ==========================  ================================

Any other value (0, 9, 65537, ...) is invalid and viewers ignore it. cvpipe keeps the
stored orientation unless a dataset is imported with ``--exif apply``: then each record
keeps its orientation in ``meta["exif_orientation"]`` (2-8 only), its ``width``,
``height`` and boxes are in the oriented frame, and every decode of it
(:func:`cvpipe.images.decode`) turns the pixels the same way.

Example:
    >>> oriented_size(640, 480, 6)
    (480, 640)
    >>> orient_boxes([[0.0, 0.0, 10.0, 20.0]], 640, 480, 6)
    [[460.0, 0.0, 480.0, 10.0]]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from PIL import Image

log = logging.getLogger(__name__)

ORIENTATION_TAG = 0x0112
META_KEY = "exif_orientation"
ExifMode = Literal["keep", "apply"]

# How to orient a decode: None keeps the stored pixels, 1-8 applies that value, "exif"
# applies the value the file itself carries (predict/serve for a model trained with it).
Orient = int | Literal["exif"] | None

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def is_valid(value: object) -> bool:
    """True for the eight values the EXIF standard defines (1-8)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8


def turns(value: object) -> bool:
    """True when ``value`` changes the pixels (a valid value other than 1)."""
    return is_valid(value) and value != 1


def swaps_axes(value: object) -> bool:
    """True for 5-8: the oriented image is the stored one with width and height swapped."""
    return is_valid(value) and int(value) >= 5  # type: ignore[call-overload]


def read(im: Image.Image) -> int | None:
    """The raw orientation tag of an opened image (any integer), None when absent.

    Reads the header only; a broken EXIF block counts as absent.
    """
    try:
        value = im.getexif().get(ORIENTATION_TAG)
    except Exception:  # a broken EXIF block is not worth failing the image for
        log.debug("unreadable EXIF block in %s", getattr(im, "filename", "an image"))
        return None
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return int(value) if isinstance(value, int) else None


def apply(im: Image.Image, value: object) -> Image.Image:
    """``im`` turned as orientation ``value`` says; the same image for 1 or invalid values."""
    if not turns(value):
        return im
    return im.transpose(_TRANSPOSE[int(value)])  # type: ignore[call-overload]


def oriented_size(width: int, height: int, value: object) -> tuple[int, int]:
    """Size after orientation ``value`` of a ``width x height`` stored image."""
    return (height, width) if swaps_axes(value) else (width, height)


def stored_size(width: int, height: int, value: object) -> tuple[int, int]:
    """Inverse of :func:`oriented_size` (the same swap)."""
    return oriented_size(width, height, value)


def _point(x: float, y: float, w: float, h: float, value: int) -> tuple[float, float]:
    """A point of the ``w x h`` stored image in the oriented image's coordinates."""
    if value == 2:
        return w - x, y
    if value == 3:
        return w - x, h - y
    if value == 4:
        return x, h - y
    if value == 5:
        return y, x
    if value == 6:
        return h - y, x
    if value == 7:
        return h - y, w - x
    if value == 8:
        return y, w - x
    return x, y


def orient_boxes(
    boxes: Sequence[Sequence[float]], width: int, height: int, value: object
) -> list[list[float]]:
    """xyxy pixel boxes of a ``width x height`` stored image, in the oriented frame.

    Args:
        boxes: ``[[x1, y1, x2, y2], ...]`` in stored pixels.
        width: stored image width.
        height: stored image height.
        value: EXIF orientation; 1 or an invalid value returns the boxes unchanged.

    Returns:
        New boxes, ``x1 <= x2`` and ``y1 <= y2``, in the oriented image's pixels.
    """
    if not turns(value):
        return [[float(v) for v in b] for b in boxes]
    v = int(value)  # type: ignore[call-overload]
    out = []
    for x1, y1, x2, y2 in boxes:
        ax, ay = _point(float(x1), float(y1), width, height, v)
        bx, by = _point(float(x2), float(y2), width, height, v)
        out.append([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)])
    return out


def resolve(orient: Orient, im: Image.Image) -> int | None:
    """The orientation value a decode of ``im`` applies (None: keep the stored pixels)."""
    if orient == "exif":
        value = read(im)
        return value if turns(value) else None
    return orient if turns(orient) else None
