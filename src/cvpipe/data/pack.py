"""Packed datasets: pre-resized uint8 pixels in a few memory-mapped shards.

``cvpipe pack DATASET --size 256 --out PACK`` decodes every image once (JPEG draft decode),
resizes its shorter side to ``size`` and appends the ``H x W x 3`` pixels to a flat
``uint8`` shard (``shard_00000.npy``, ...). ``index.json`` maps each record to
``[shard, offset, height, width]`` and carries the manifest hash it was built from.
Repeated epochs then read pixels straight from the page cache: nothing is decoded.

Layout::

    PACK/index.json         {"format": "cvpipe-pack", "version": 1, "size": 256,
                             "manifest_sha256": ..., "shards": [...],
                             "records": {id: [shard, offset, h, w, file(, exif orientation)]}, "problems": [...]}
    PACK/shard_00000.npy    1-D uint8, C-order HWC pixels back to back

Each shard is written to a temporary file and renamed; ``index.json`` comes last, so a
killed pack leaves no usable (half) pack. Unreadable images are listed in ``problems``
and left out; the training loader then decodes them from disk and reports them itself.

:func:`auto_pack` is the automatic form used by detector training: when the photos are
much larger than the input size (:func:`needs_pack`), the records are packed once at the
input size into ``$CVPIPE_HOME/packs/<key>`` (key: records' id/file/size, size, pack
version), built in a temporary directory and renamed into place, and reused by later runs.

Example:
    >>> pack_dataset("datasets/bins", "packs/bins256", PackConfig(size=256))  # doctest: +SKIP
    >>> reader = PackReader.open("packs/bins256")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field

from cvpipe.config import Config
from cvpipe.data.manifest import Dataset, Record
from cvpipe.errors import DatasetError
from cvpipe.home import cvpipe_home
from cvpipe.images import ImageReadError
from cvpipe.io import read_json, write_json
from cvpipe.progress import track

log = logging.getLogger(__name__)

INDEX = "index.json"
FORMAT = "cvpipe-pack"
VERSION = 1


class PackConfig(Config):
    """Options of ``cvpipe pack``.

    Attributes:
        size: shorter side of the stored images, in pixels (never upscaled).
        shard_mb: target shard size in MiB.
        workers: decode threads (0 = min(8, cpu count)).
        splits: pack only these splits (default: every record).
    """

    size: int = Field(default=256, ge=8)
    shard_mb: int = Field(default=512, ge=1)
    workers: int = Field(default=0, ge=0)
    splits: list[str] | None = None


@dataclass
class PackResult:
    path: Path
    images: int
    shards: int
    bytes: int
    problems: list[dict[str, Any]] = field(default_factory=list)


def resize_shorter(im: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` (only ever down)."""
    w, h = im.size
    s = min(w, h)
    if s <= size:
        return im
    scale = size / s
    return im.resize(
        (max(1, round(w * scale)), max(1, round(h * scale))),
        Image.Resampling.BILINEAR,
        reducing_gap=None,
    )


def _load(ds: Dataset, rec: Record, size: int) -> np.ndarray:
    im = ds.load_image(rec, "RGB", draft=(size, size))  # in the record's (oriented) frame
    return np.asarray(resize_shorter(im, size), dtype=np.uint8)


class _ShardWriter:
    def __init__(self, out: Path, shard_bytes: int) -> None:
        self.out = out
        self.shard_bytes = shard_bytes
        self.names: list[str] = []
        self.chunks: list[np.ndarray] = []
        self.used = 0
        self.total = 0

    def add(self, arr: np.ndarray) -> tuple[int, int]:
        if self.chunks and self.used + arr.nbytes > self.shard_bytes:
            self.flush()
        where = (len(self.names), self.used)
        self.chunks.append(arr.reshape(-1))
        self.used += arr.nbytes
        return where

    def flush(self) -> None:
        if not self.chunks:
            return
        name = f"shard_{len(self.names):05d}.npy"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.out)
        os.close(fd)
        try:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(self.used,))
            pos = 0
            for c in self.chunks:
                mm[pos : pos + c.size] = c
                pos += c.size
            mm.flush()
            del mm
            os.replace(tmp, self.out / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.names.append(name)
        self.total += self.used
        self.chunks, self.used = [], 0


def pack_dataset(
    dataset: str | Path | Dataset,
    out: str | Path,
    config: PackConfig | None = None,
    records: Sequence[Record] | None = None,
) -> PackResult:
    """Pre-resize a dataset's images into memory-mappable shards.

    Args:
        dataset: dataset directory or loaded :class:`Dataset`.
        out: pack directory (created; an existing pack there is replaced).
        config: :class:`PackConfig`.
        records: pack these records (default: the dataset's, filtered by ``config.splits``).

    Returns:
        A :class:`PackResult` (counts, bytes, unreadable images).

    Raises:
        DatasetError: the dataset has no records to pack.
    """
    config = config or PackConfig()
    ds = dataset if isinstance(dataset, Dataset) else Dataset.load(dataset)
    if records is None:
        records = [r for r in ds.records if config.splits is None or r.split in config.splits]
    if not records:
        raise DatasetError(f"{ds.root}: no records to pack (splits {config.splits})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / INDEX).unlink(missing_ok=True)  # an old index must never describe new shards
    writer = _ShardWriter(out, config.shard_mb * 1024 * 1024)
    workers = config.workers or min(8, os.cpu_count() or 1)
    index: dict[str, list[Any]] = {}
    problems: list[dict[str, Any]] = []

    def job(rec: Record) -> np.ndarray | ImageReadError:
        try:
            return _load(ds, rec, config.size)
        except ImageReadError as exc:
            return exc

    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(job, records)
        for rec, res in track(
            zip(records, results, strict=True), total=len(records), desc="pack", unit="img"
        ):
            if isinstance(res, ImageReadError):
                log.warning("pack: skipped %s: %s", res.path, res.message)
                problems.append(
                    {
                        "id": rec.id,
                        "file": rec.file,
                        "kind": res.kind,
                        "message": res.message,
                        "action": "left out of pack",
                    }
                )
                continue
            shard, offset = writer.add(res)
            entry = [shard, offset, int(res.shape[0]), int(res.shape[1]), rec.file]
            if rec.orientation is not None:  # packed turned: only such a record may use it
                entry.append(rec.orientation)
            index[rec.id] = entry
    writer.flush()
    for stale in out.glob("shard_*.npy"):
        if stale.name not in writer.names:
            stale.unlink()
    write_json(
        out / INDEX,
        {
            "format": FORMAT,
            "version": VERSION,
            "size": config.size,
            "dataset": str(ds.root),
            "manifest_sha256": ds.manifest_hash(),
            "shards": writer.names,
            "records": index,
            "problems": problems,
        },
        indent=None,
    )
    log.info(
        "packed %d images into %d shards (%.1f MiB) at %s",
        len(index),
        len(writer.names),
        writer.total / 2**20,
        out,
    )
    return PackResult(out, len(index), len(writer.names), writer.total, problems)


class PackReader:
    """Reads packed pixels; shards are memory-mapped lazily (safe to send to workers).

    Args:
        root: pack directory.
        index: parsed ``index.json``.
    """

    def __init__(self, root: Path, index: dict[str, Any]) -> None:
        self.root = root
        self.size = int(index["size"])
        self.manifest_sha256 = str(index.get("manifest_sha256", ""))
        self.shards: list[str] = list(index["shards"])
        self.records: dict[str, list[Any]] = index["records"]
        self._maps: dict[int, np.ndarray] = {}

    @classmethod
    def open(cls, root: str | Path) -> PackReader:
        """Open a pack directory.

        Raises:
            DatasetError: no ``index.json`` (not a pack, or the pack was interrupted).
        """
        root = Path(root)
        path = root / INDEX
        if not path.is_file():
            raise DatasetError(
                f"{path}: not found; is {root} a pack? (create one with 'cvpipe pack DATASET --out {root}')"
            )
        index = read_json(path)
        if index.get("format") != FORMAT:
            raise DatasetError(f"{path}: not a cvpipe pack index (format {index.get('format')!r})")
        return cls(root, index)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def _shard(self, i: int) -> np.ndarray:
        mm = self._maps.get(i)
        if mm is None:
            mm = np.load(self.root / self.shards[i], mmap_mode="r")
            self._maps[i] = mm
        return mm

    def get(self, rec: Record) -> np.ndarray | None:
        """The packed ``H x W x 3`` uint8 pixels of ``rec``, or None when not packed."""
        entry = self.records.get(rec.id)
        if entry is None or not _matches(entry, rec):
            return None
        shard, offset, h, w = entry[:4]
        flat = self._shard(shard)[offset : offset + h * w * 3]
        return np.asarray(flat).reshape(h, w, 3)

    def coverage(self, records: list[Record]) -> float:
        """Share of ``records`` present in the pack."""
        if not records:
            return 1.0
        hit = sum(
            1 for r in records if (e := self.records.get(r.id)) is not None and _matches(e, r)
        )
        return hit / len(records)


def _matches(entry: list[Any], rec: Record) -> bool:
    """A pack entry holds ``rec``'s pixels: same file, turned by the same EXIF orientation."""
    if entry[4] != rec.file:
        return False
    return (entry[5] if len(entry) > 5 else None) == rec.orientation


def needs_pack(records: Sequence[Record], size: int, ratio: float = 2.0) -> int | None:
    """The median shorter side of ``records`` when it is at least ``ratio`` × ``size``
    (decoding them every epoch then costs several times what a ``size`` pack does), else
    None. Records without a recorded size are left out of the median."""
    sides = sorted(min(r.width, r.height) for r in records if r.width > 0 and r.height > 0)
    if not sides:
        return None
    median = sides[len(sides) // 2]
    return median if median >= ratio * size else None


def default_pack_root(override: str | Path | None = None) -> Path:
    """``override``, else ``$CVPIPE_HOME/packs``, else ``~/.cache/cvpipe/packs``."""
    if override:
        return Path(override).expanduser()
    return cvpipe_home() / "packs"


def pack_key(records: Sequence[Record], size: int) -> str:
    """SHA-256 of the records (id, file, width, height, EXIF orientation applied, in order),
    the size and the format."""
    h = hashlib.sha256(json.dumps({"format": FORMAT, "version": VERSION, "size": size}).encode())
    for r in records:
        h.update(json.dumps([r.id, r.file, r.width, r.height, r.orientation]).encode())
        h.update(b"\n")
    return h.hexdigest()


def auto_pack(
    ds: Dataset, records: Sequence[Record], size: int, root: str | Path | None = None
) -> tuple[PackReader, str]:
    """``records`` packed at ``size`` under ``root/<key>`` (see the module docstring).

    Returns:
        The reader and ``hit`` (an existing pack) or ``miss`` (packed now).
    """
    base = default_pack_root(root)
    final = base / pack_key(records, size)
    if (final / INDEX).is_file():
        log.info("auto-pack hit: %s", final)
        return PackReader.open(final), "hit"
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name[:16]}.", suffix=".tmp", dir=base))
    try:
        pack_dataset(ds, tmp, PackConfig(size=size), records=records)
        try:
            os.replace(tmp, final)
        except OSError:  # another run finished the same pack first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("auto-pack: decoded %d images once at %d px into %s", len(records), size, final)
    return PackReader.open(final), "miss"
