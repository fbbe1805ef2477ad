"""Reading images: sizes from headers, real formats from magic bytes, full decodes.

Sizes come from the file header (PIL opens lazily), so importing 500k images never
decodes a pixel. :func:`decode` is the full, strict decode used by ``validate``, the
training loaders, pack, eval and predict; it is also where EXIF orientation is applied
(``orientation=``, see :mod:`cvpipe.orientation`), so every caller sees the same
pixels for a record.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

import cvpipe.orientation as O

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
)

# extension → PIL format names it may legitimately hold
_EXT_FORMATS = {
    ".jpg": {"JPEG", "MPO"},
    ".jpeg": {"JPEG", "MPO"},
    ".jpe": {"JPEG"},
    ".png": {"PNG"},
    ".bmp": {"BMP"},
    ".gif": {"GIF"},
    ".webp": {"WEBP"},
    ".tif": {"TIFF"},
    ".tiff": {"TIFF"},
    ".ppm": {"PPM"},
    ".pgm": {"PPM"},
}


class ImageReadError(Exception):
    """An image file is missing, unreadable, corrupt or truncated (``kind`` says which)."""

    def __init__(self, path: Path, kind: str, message: str) -> None:
        self.path = path
        self.kind = kind
        self.message = message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    width: int
    height: int
    format: str  # real format from the content (JPEG, PNG, ...)
    mode: str  # RGB, L, RGBA, P, ...
    orientation: int | None = None  # raw EXIF orientation tag, read by probe(exif=True)

    def ext_mismatch(self, path: str | Path) -> bool:
        """True when the file extension does not match the real content."""
        allowed = _EXT_FORMATS.get(Path(path).suffix.lower())
        return allowed is not None and self.format not in allowed


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def probe(path: str | Path, exif: bool = False) -> ImageInfo:
    """Read size, real format and mode from the header only.

    Args:
        path: image file.
        exif: also read the raw EXIF orientation tag (``ImageInfo.orientation``; any
            integer, None when absent). Width and height stay the stored ones.

    Raises:
        ImageReadError: kind ``missing`` | ``unreadable`` | ``empty``.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                tag = O.read(im) if exif else None
                info = ImageInfo(int(w), int(h), str(im.format), str(im.mode), tag)
    except FileNotFoundError:
        raise ImageReadError(p, "missing", "image file not found") from None
    except UnidentifiedImageError:
        kind = "empty" if p.stat().st_size == 0 else "unreadable"
        raise ImageReadError(p, kind, "not an image (cannot identify format)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(p, "unreadable", f"cannot read image header: {exc}") from None
    if info.width <= 0 or info.height <= 0:
        raise ImageReadError(p, "unreadable", f"image has size {info.width}x{info.height}")
    return info


def decode(
    path: str | Path,
    mode: str | None = "RGB",
    draft: tuple[int, int] | None = None,
    orientation: O.Orient = None,
) -> Image.Image:
    """Fully decode an image (strict: truncated files raise).

    Args:
        path: image file.
        mode: convert to this mode (``None`` keeps the file's mode). Palette and
            transparency are flattened properly for ``"RGB"``.
        draft: for JPEG, ask the decoder for a reduced size at least this large
            (``(w, h)``, in the oriented frame) — much faster when training at 224 px
            on large photos.
        orientation: None keeps the stored pixels; an EXIF orientation value (a record's
            ``Record.orientation``) turns them as it says (1 and invalid values do
            nothing); ``"exif"`` applies the file's own tag (predict/serve of a model
            trained on a dataset imported with ``--exif apply``).

    Raises:
        ImageReadError: kind ``missing`` | ``unreadable`` | ``truncated`` | ``corrupt``.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im: Image.Image = Image.open(p)
            try:
                turn = O.resolve(orientation, im)
                if draft is not None and im.format == "JPEG":
                    im.draft("RGB", draft[::-1] if O.swaps_axes(turn) else draft)
                im.load()
            except BaseException:
                im.close()  # do not leak the file handle of a broken image
                raise
    except FileNotFoundError:
        raise ImageReadError(p, "missing", "image file not found") from None
    except UnidentifiedImageError:
        raise ImageReadError(p, "unreadable", "not an image (cannot identify format)") from None
    except OSError as exc:
        msg = str(exc)
        kind = "truncated" if "truncated" in msg or "broken data stream" in msg else "corrupt"
        raise ImageReadError(p, kind, f"cannot decode image: {msg}") from None
    except (ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(p, "corrupt", f"cannot decode image: {exc}") from None
    if turn is not None:
        im = O.apply(im, turn)
    if mode is not None and im.mode != mode:
        if mode == "RGB" and (im.mode in ("P", "PA", "LA", "RGBA") or "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        im = im.convert(mode)
    return im
