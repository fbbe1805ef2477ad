"""The export session shared by every format.

An :class:`Exporter` writes one dataset in one format into a fresh staging folder;
:func:`export_dataset` checks the task, picks copy or link for the images, and renames the
staging folder to OUT only when everything was written, so a killed export never leaves a
half-written OUT. The source dataset (manifest, dataset.yaml, images) is only read:
OUT must be a new or empty folder.

Writing a new format means subclassing :class:`Exporter` and registering it::

    @EXPORTERS.register("myformat")
    class MyExporter(Exporter):
        tasks = ("detect",)
        def write(self): ...
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import ClassVar

from cvpipe.config import Config, load_config
from cvpipe.data.manifest import SPLITS, Dataset, Record, Task
from cvpipe.errors import DatasetError
from cvpipe.progress import track
from cvpipe.registry import Registry

log = logging.getLogger(__name__)

EXPORTERS: Registry[type[Exporter]] = Registry("export format")


class ExportOptions(Config):
    """Options of ``cvpipe export-data``.

    Attributes:
        copy_images: ``True`` copies the images into OUT, ``False`` references them
            (symbolic links or paths, depending on the format); ``None`` uses the
            format's default (copy for imagefolder, reference for the others).
    """

    copy_images: bool | None = None


class Exporter(ABC):
    """Base of every export format.

    Args:
        dataset: the dataset to write (read only).
        out: the staging folder to write into (empty; renamed to the final OUT later).
        final: the absolute final OUT path, for files that must name it.
        copy_images: copy the images (``True``) or reference them (``False``).
    """

    tasks: ClassVar[tuple[Task, ...]] = ("detect",)
    copy_by_default: ClassVar[bool] = False

    def __init__(self, dataset: Dataset, out: Path, final: Path, copy_images: bool) -> None:
        self.dataset = dataset
        self.out = out
        self.final = final
        self.copy_images = copy_images

    @abstractmethod
    def write(self) -> None:
        """Write the whole dataset into ``self.out``."""

    # -- helpers for formats --------------------------------------------------------------
    def by_split(self) -> list[tuple[str | None, list[Record]]]:
        """Records grouped by split, in the order train, val, test, others, none."""
        groups: dict[str | None, list[Record]] = {}
        for r in self.dataset.records:
            groups.setdefault(r.split, []).append(r)
        order: list[str | None] = [s for s in SPLITS if s in groups]
        order += sorted(s for s in groups if s is not None and s not in SPLITS)
        if None in groups:
            order.append(None)
        return [(s, groups[s]) for s in order]

    def source_image(self, rec: Record) -> Path:
        """Absolute path of a record's image in the source dataset."""
        return Path(os.path.abspath(self.dataset.image_path(rec)))

    def place_image(self, rec: Record, dest: Path) -> None:
        """Copy or symlink the record's image to ``dest`` (inside the staging folder).

        Raises:
            DatasetError: the image is missing, or links cannot be made here.
        """
        src = self.source_image(rec)
        if not src.is_file():
            raise DatasetError(
                f"{src}: image of record {rec.id!r} not found; run 'cvpipe validate' to list and "
                "drop missing images, then export again"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.copy_images:
            shutil.copy2(src, dest)
            return
        try:
            os.symlink(src.resolve(), dest)
        except OSError as exc:
            raise DatasetError(
                f"{dest}: cannot create a symbolic link here ({exc}); use --copy"
            ) from None


def export_relpaths(
    records: Iterable[Record], strip: tuple[str, ...] = ()
) -> dict[str, PurePosixPath]:
    """Safe relative paths for the records' images inside an export folder.

    ``..``, ``.`` and drive/root parts are dropped so nothing lands outside OUT, a leading
    ``images/`` and the names in ``strip`` (e.g. the split) are removed, and clashes get a
    ``_1``, ``_2`` ... suffix. Clashes are judged without the extension (case-insensitive),
    because ``a.jpg`` and ``a.png`` would share ``a.xml`` / ``a.txt``. Returns
    {record id: path}.
    """
    out: dict[str, PurePosixPath] = {}
    taken: set[str] = set()
    for r in records:
        parts = [
            p
            for p in PurePosixPath(r.file.replace("\\", "/")).parts
            if p not in ("..", ".", "/") and ":" not in p
        ]
        while len(parts) > 1 and parts[0] in ("images", *strip):
            parts = parts[1:]
        path = PurePosixPath(*parts) if parts else PurePosixPath(f"{r.id}.jpg")
        candidate, n = path, 0
        while candidate.with_suffix("").as_posix().lower() in taken:
            n += 1
            candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
        taken.add(candidate.with_suffix("").as_posix().lower())
        out[r.id] = candidate
    return out


def fmt_num(v: float) -> str:
    """A coordinate with at most 3 decimals and no trailing zeros (``12``, ``10.5``)."""
    s = f"{round(float(v), 3):.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def export_dataset(
    dataset: str | Path | Dataset, format: str, out: str | Path, **options: object
) -> Path:
    """Write a dataset in another format.

    Args:
        dataset: a dataset directory (or a loaded :class:`Dataset`); never modified.
        format: a registered export format (``coco``, ``voc``, ``yolo``, ``imagefolder``).
        out: a new or empty output folder.
        **options: :class:`ExportOptions` fields (``copy_images``).

    Returns:
        The output folder.

    Raises:
        UnknownNameError: unknown format (the message lists the valid ones).
        DatasetError: the format does not fit the dataset's task, OUT is not empty, or an
            image is missing.
        ConfigError: an unknown option.

    Example:
        >>> export_dataset("datasets/burgers", "coco", "exports/burgers-coco")  # doctest: +SKIP
    """
    opts = load_config(ExportOptions, values=dict(options))
    cls = EXPORTERS.get(format)
    ds = dataset if isinstance(dataset, Dataset) else Dataset.load(dataset)
    if ds.task not in cls.tasks:
        fit = [n for n in EXPORTERS.names() if ds.task in EXPORTERS.get(n).tasks]
        raise DatasetError(
            f"{ds.root}: format {format!r} writes {'/'.join(cls.tasks)} datasets but this one is "
            f"{ds.task}; formats that fit a {ds.task} dataset: {', '.join(fit) or 'none'}"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: already exists and is not empty; choose a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    copy = cls.copy_by_default if opts.copy_images is None else opts.copy_images
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".export", dir=out.parent))
    try:
        cls(ds, staging, out.resolve(), copy).write()
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported %d images of %s as %s to %s", len(ds), ds.root, format, out)
    return out


def tracked(records: list[Record], desc: str) -> Iterable[Record]:
    """Records with a progress bar (when the CLI enabled bars)."""
    return track(records, total=len(records), desc=desc, unit="img")
