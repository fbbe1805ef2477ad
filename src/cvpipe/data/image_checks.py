"""Per-image checks of ``cvpipe validate``: a full, strict decode of every file.

:func:`check_image` decodes one file and keeps only what validation needs (size, real
format, mode, EXIF orientation and, optionally, the blake2b digest of its bytes);
:func:`check_images` runs it over many files in a thread pool (Pillow releases the GIL
while decoding), in chunks, with a progress bar. No pixels are kept, so 50k+ images fit.

Example:
    >>> check_image("bins/00001.jpg")  # doctest: +SKIP
    ImageCheck(error_kind=None, error_message=None, width=128, height=128, format='JPEG', ...)
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

import cvpipe.orientation as O
from cvpipe.data.duplicates import hash_file
from cvpipe.images import ImageReadError, decode
from cvpipe.progress import Bar

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class ImageCheck:
    """What decoding one image file found (small; no pixels are kept)."""

    error_kind: str | None = None
    error_message: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    orientation: int | None = None  # the file's raw EXIF orientation tag
    digest: str | None = None

    def in_frame(self, orientation: int | None) -> ImageCheck:
        """The check with width and height in the frame of a record whose pixels are
        turned by ``orientation`` (``Record.orientation``; None: as stored)."""
        if self.width is None or self.height is None or not O.swaps_axes(orientation):
            return self
        return replace(self, width=self.height, height=self.width)


def check_image(path: str | Path, hash_bytes: bool = True) -> ImageCheck:
    """Fully decode one image (strict) and read what validation needs; keeps no pixels.

    Args:
        path: the image file.
        hash_bytes: also hash the file's bytes (for duplicate detection).

    Returns:
        An :class:`ImageCheck`; decoding failures are returned in ``error_kind``
        (``missing`` | ``empty`` | ``unreadable`` | ``truncated`` | ``corrupt``), not raised.
    """
    p = Path(path)
    digest = None
    if hash_bytes:
        try:
            digest = hash_file(p)
        except FileNotFoundError:
            return ImageCheck("missing", "image file not found")
        except OSError as exc:
            return ImageCheck("unreadable", f"cannot read file: {exc}")
    try:
        im = decode(p, mode=None)
    except ImageReadError as exc:
        kind = exc.kind
        if kind == "unreadable" and p.is_file() and p.stat().st_size == 0:
            kind = "empty"
        return ImageCheck(kind, exc.message, digest=digest)
    try:
        return ImageCheck(
            width=int(im.size[0]),
            height=int(im.size[1]),
            format=str(im.format),
            mode=str(im.mode),
            orientation=O.read(im),
            digest=digest,
        )
    finally:
        im.close()


def _check_chunk(paths: list[tuple[int, Path]], hash_bytes: bool) -> list[tuple[int, ImageCheck]]:
    return [(i, check_image(p, hash_bytes)) for i, p in paths]


def check_images(
    paths: list[Path], *, workers: int | None = None, hash_bytes: bool = True, chunk_size: int = 64
) -> list[ImageCheck]:
    """Check many images in a thread pool with a progress bar; results in input order."""
    results: list[ImageCheck | None] = [None] * len(paths)
    workers = workers or os.cpu_count() or 1
    indexed = list(enumerate(paths))
    chunks = [indexed[i : i + chunk_size] for i in range(0, len(indexed), chunk_size)]
    with Bar(total=len(paths), desc="validate", unit="img") as bar:
        if workers == 1:
            for chunk in chunks:
                for i, res in _check_chunk(chunk, hash_bytes):
                    results[i] = res
                bar.update(len(chunk))
        else:
            with ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="cvpipe-validate"
            ) as pool:
                futures = [pool.submit(_check_chunk, c, hash_bytes) for c in chunks]
                for fut in as_completed(futures):
                    done = fut.result()
                    for i, res in done:
                        results[i] = res
                    bar.update(len(done))
    return [r if r is not None else ImageCheck("unreadable", "not checked") for r in results]
