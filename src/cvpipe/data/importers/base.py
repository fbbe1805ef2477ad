"""The import session shared by every format.

An :class:`Importer` walks its source and yields :class:`RawRecord` objects whose labels
are class *names* and whose image paths are absolute. :func:`import_dataset` does the
rest for every format alike:

- probes each image header once (real size, real format; no decode),
- clips boxes to the image and drops zero-area ones, reporting each,
- assigns class indices (``--classes`` order, the format's own order, or sorted names),
- streams records to ``manifest.jsonl`` (memory holds one record at a time plus the
  class table), writes ``dataset.yaml`` and ``import_report.json``.

Writing a new format means subclassing :class:`Importer` and registering it::

    @IMPORTERS.register("myformat")
    class MyImporter(Importer):
        default_task = "detect"
        def records(self): ...
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import field_validator

import cvpipe.orientation as O
from cvpipe.config import Config
from cvpipe.data import boxes as B
from cvpipe.data.manifest import (
    MANIFEST,
    Dataset,
    DatasetInfo,
    Record,
    SourceInfo,
    Task,
    write_info,
)
from cvpipe.data.problems import OnError, ProblemLog
from cvpipe.errors import ConfigError, DatasetError
from cvpipe.images import ImageInfo, ImageReadError, probe
from cvpipe.io import atomic_open, write_json
from cvpipe.orientation import ExifMode
from cvpipe.progress import Bar
from cvpipe.registry import Registry
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)

IMPORTERS: Registry[type[Importer]] = Registry("dataset format")


class ImportOptions(Config):
    """Options common to every importer (format-specific ones are ignored elsewhere).

    Attributes:
        task: override the format's default task (e.g. ``classify`` for amazon-bin).
        classes: keep only these classes, in this order (names, or Open Images MIDs).
        counts: range of counts kept by amazon-bin, e.g. ``"1-5"`` or ``"0-5"``.
        copy_images: copy images into ``OUT/images`` instead of referencing them.
        on_error: ``fail`` stops at the first unusable file; ``skip`` leaves it out and
            lists it in ``import_report.json``.
        name: dataset name (default: the output directory name).
        images: image folder when the format keeps images apart from annotations.
        descriptions: Open Images class-descriptions CSV (MID → name).
        min_confidence: Open Images rows below this confidence are ignored.
        exif: ``keep`` (default) uses the stored pixels as they are; ``apply`` reads each
            image's EXIF orientation and records it (``meta["exif_orientation"]``, 2-8)
            so every decode turns the image as a photo viewer does; width, height and
            boxes are then in that oriented frame (boxes are converted from the stored
            pixels at import). Invalid values (outside 1-8) are reported and kept as stored.
    """

    task: Task | None = None
    classes: list[str] | None = None
    counts: str = "1-5"
    copy_images: bool = False
    on_error: OnError = "skip"
    name: str | None = None
    images: str | None = None
    descriptions: str | None = None
    min_confidence: float = 0.5
    exif: ExifMode = "keep"

    @field_validator("classes", mode="before")
    @classmethod
    def _split_classes(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [c.strip() for c in v.split(",") if c.strip()]
        return v

    def count_range(self) -> tuple[int, int]:
        try:
            lo, hi = (int(x) for x in self.counts.split("-", 1))
        except ValueError:
            raise ConfigError(f"counts {self.counts!r}: expected a range like 1-5 or 0-5") from None
        if lo < 0 or hi < lo:
            raise ConfigError(f"counts {self.counts!r}: expected 0 <= low <= high")
        return lo, hi


@dataclass(slots=True)
class RawRecord:
    """A record as an importer sees it: absolute image path, labels as class names.

    ``info`` may carry the probed header when the importer needed it already.
    """

    id: str
    path: Path
    split: str | None = None
    label: str | None = None
    count: int | None = None
    boxes: list[list[float]] | None = None
    labels: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    info: ImageInfo | None = None
    where: str | None = None  # annotation file the record came from, for messages


class Importer(ABC):
    """Base of every format.

    A format lists the tasks its files can hold (``tasks``, the first choice
    ``default_task``); what a record of the chosen task carries is the task's answer
    (``self.spec``, a :class:`~cvpipe.tasks.base.Task`): its label fields and, for an
    image with one class, :meth:`~cvpipe.tasks.base.Task.label_fields`.

    Args:
        source: file or directory named on the command line.
        options: resolved :class:`ImportOptions`.
        problems: where to record problems.
    """

    default_task: ClassVar[Task] = "detect"
    tasks: ClassVar[tuple[Task, ...]] = ("detect",)

    def __init__(self, source: Path, options: ImportOptions, problems: ProblemLog) -> None:
        self.source = Path(source)
        self.options = options
        self.problems = problems
        self.task: Task = options.task or self.default_task
        if self.task not in self.tasks:
            raise ConfigError(
                f"task {self.task!r} is not available for this format; valid: {', '.join(self.tasks)}"
            )
        self.spec = get_task(self.task)
        # records carry a count: the classes are the --counts range, a class name a count
        self.counts = "count" in self.spec.record_fields
        if not self.source.exists():
            raise DatasetError(f"{self.source}: source not found")

    @abstractmethod
    def records(self) -> Iterator[RawRecord]:
        """Yield records in a deterministic order."""

    def class_order(self) -> list[str] | None:
        """Class names in the format's own order, if it has one (called after records())."""
        return None

    def image_root(self) -> Path:
        """Directory that image paths are stored relative to."""
        return self.source if self.source.is_dir() else self.source.parent

    def probe_image(self, path: Path, where: str | Path | None = None) -> ImageInfo | None:
        """Probe an image header; record a problem and return None when unusable."""
        try:
            info = probe(path, exif=self.options.exif == "apply")
        except ImageReadError as exc:
            self.problems.add(
                path,
                f"image_{exc.kind}",
                exc.message + (f" (referenced by {where})" if where else ""),
                "skipped image",
                fatal=True,
            )
            return None
        if info.ext_mismatch(path):
            self.problems.add(
                path,
                "extension_mismatch",
                f"file is {info.format} but named {path.suffix}",
                "kept; decoded by content",
            )
        return info


def _fix_boxes(raw: RawRecord, info: ImageInfo, problems: ProblemLog) -> None:
    if raw.boxes is None:
        return
    labels = raw.labels or []
    box_meta = raw.meta.get("box_meta")
    keep_b: list[list[float]] = []
    keep_l: list[str] = []
    keep_m: list[Any] = []
    where = raw.where or str(raw.path)
    for i, (b, lab) in enumerate(zip(raw.boxes, labels, strict=True)):
        if B.is_outside(b, info.width, info.height):
            problems.add(
                where,
                "box_outside",
                f"box {i} {[round(v, 1) for v in b]} ({lab}) extends outside the {info.width}x{info.height} image",
                "clipped to the image",
            )
            b = B.clip(b, info.width, info.height)
        else:
            b = B.clip(b, info.width, info.height)  # sub-pixel rounding only
        if B.is_degenerate(b):
            problems.add(
                where,
                "box_zero_area",
                f"box {i} {[round(v, 1) for v in b]} ({lab}) has zero area",
                "dropped box",
            )
            continue
        keep_b.append(b)
        keep_l.append(lab)
        if box_meta is not None:
            keep_m.append(box_meta[i])
    raw.boxes, raw.labels = keep_b, keep_l
    if box_meta is not None:
        raw.meta["box_meta"] = keep_m


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote, without loading the manifest back into memory.

    Attributes:
        root: the dataset directory.
        info: its ``dataset.yaml``.
        class_counts: images per class (classify/count) or objects per class (detect).
    """

    root: Path
    info: DatasetInfo
    class_counts: list[int]


def import_dataset(
    format: str,
    source: str | Path,
    out: str | Path,
    options: ImportOptions | None = None,
) -> Dataset:
    """Import ``source`` in ``format`` into the dataset directory ``out``.

    Memory stays flat while importing (records are streamed to disk); the returned
    :class:`Dataset` then holds the manifest. Use :func:`run_import` to skip that.

    Args:
        format: a registered format name (``cvpipe import --help`` lists them).
        source: the file or folder to import; never modified.
        out: output dataset directory (created; an existing dataset there is replaced).
        options: :class:`ImportOptions`.

    Returns:
        The imported :class:`Dataset`.

    Raises:
        UnknownNameError: unknown format.
        DatasetFormatError: a malformed file, with ``on_error="fail"``.
        DatasetError: nothing importable was found.

    Example:
        >>> ds = import_dataset("imagefolder", "photos/", "datasets/scenes")  # doctest: +SKIP
    """
    return Dataset.load(run_import(format, source, out, options).root)


def run_import(
    format: str,
    source: str | Path,
    out: str | Path,
    options: ImportOptions | None = None,
) -> ImportSummary:
    """Do the import of :func:`import_dataset` and return a summary (same errors)."""
    options = options or ImportOptions()
    out = Path(out)
    importer_cls = IMPORTERS.get(format)
    problems = ProblemLog(options.on_error)
    importer = importer_cls(Path(source), options, problems)
    image_root = importer.image_root().resolve()
    out.mkdir(parents=True, exist_ok=True)

    seen: set[str] = set()
    n_images = n_boxes = n_oriented = 0
    split_counts: Counter[str | None] = Counter()
    per_class: Counter[str] = Counter()
    fd, tmp_name = tempfile.mkstemp(prefix=".import.", suffix=".jsonl", dir=out)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with open(tmp, "w", encoding="utf-8") as f, Bar(desc=f"import {format}", unit="img") as bar:
            for raw in importer.records():
                # Classes are counted as annotated, before unusable boxes are dropped, so a
                # class whose boxes were all degenerate still keeps its place.
                seen.update([raw.label] if raw.label is not None else [])
                seen.update(raw.labels or [])
                rec = _finish(raw, importer, image_root, out, problems)
                bar.update()
                if rec is None:
                    continue
                n_images += 1
                n_oriented += rec.orientation is not None
                n_boxes += len(raw.boxes or [])
                split_counts[rec.split] += 1
                if raw.labels is not None:
                    per_class.update(raw.labels)
                else:
                    per_class[str(raw.count) if raw.count is not None else str(raw.label)] += 1
                f.write(json.dumps(rec.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
        if n_images == 0:
            raise DatasetError(
                f"{source}: no usable images found for format {format!r}"
                + (
                    f" ({len(problems)} problems; first: {problems.problems[0].file}: {problems.problems[0].message})"
                    if len(problems)
                    else ""
                )
            )
        classes = _class_table(importer, options, seen)
        _rewrite_with_indices(tmp, out / MANIFEST, classes, importer.spec.record_fields)
    finally:
        tmp.unlink(missing_ok=True)

    summary = {
        "images": n_images,
        "boxes": n_boxes if "boxes" in importer.spec.record_fields else None,
        "splits": {str(k): v for k, v in sorted(split_counts.items(), key=lambda kv: str(kv[0]))},
        "problems": problems.counts(),
        "exif": _exif_summary(n_oriented) if options.exif == "apply" else None,
    }
    summary = {k: v for k, v in summary.items() if v is not None}
    info = DatasetInfo(
        name=options.name or out.resolve().name,
        task=importer.task,
        classes=classes,
        image_root="images" if options.copy_images else _relative_root(image_root, out),
        source=SourceInfo(format=format, path=str(Path(source).resolve())),
        import_report=summary,
        exif="apply" if options.exif == "apply" else None,
        history=[f"import {format} {source}"],
    )
    write_info(out, info)
    write_json(out / "import_report.json", {"summary": summary, "problems": problems.to_json()})
    log.info("imported %d images (%d classes) into %s", n_images, len(classes), out)
    return ImportSummary(out, info, [per_class.get(c, 0) for c in classes])


def _finish(
    raw: RawRecord, importer: Importer, image_root: Path, out: Path, problems: ProblemLog
) -> Record | None:
    info = raw.info or importer.probe_image(raw.path, raw.where)
    if info is None:
        return None
    if raw.boxes is not None:
        _fix_boxes(raw, info, problems)
    width, height = info.width, info.height
    if importer.options.exif == "apply":
        width, height = _apply_orientation(raw, info, problems)
    rel = _relative_to_root(raw.path, image_root)
    if importer.options.copy_images:
        dest = out / "images" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            shutil.copy2(raw.path, dest)
    return Record(
        id=raw.id,
        file=rel.as_posix(),
        width=width,
        height=height,
        split=raw.split,
        label=raw.label,  # type: ignore[arg-type]  # names until _rewrite_with_indices
        count=raw.count,
        boxes=raw.boxes,
        labels=raw.labels,  # type: ignore[arg-type]
        meta=raw.meta,
    )


def _apply_orientation(raw: RawRecord, info: ImageInfo, problems: ProblemLog) -> tuple[int, int]:
    """``--exif apply``: record the image's orientation, turn its boxes into the oriented
    frame and return the oriented size; invalid values are reported and kept as stored."""
    tag = info.orientation
    if tag is None or tag == 1:
        return info.width, info.height
    if not O.is_valid(tag):
        problems.add(
            raw.path,
            "exif_orientation_invalid",
            f"EXIF orientation is {tag}: not a valid value (1-8), so no viewer turns this photo",
            "kept the stored pixel orientation",
            field="exif.Orientation",
        )
        return info.width, info.height
    if raw.boxes:
        raw.boxes = O.orient_boxes(raw.boxes, info.width, info.height, tag)
    raw.meta[O.META_KEY] = tag
    return O.oriented_size(info.width, info.height, tag)


def _exif_summary(n_oriented: int) -> dict[str, Any]:
    return {
        "mode": "apply",
        "oriented_images": n_oriented,
        "frame": "width, height and boxes are in the oriented frame (as a photo viewer "
        "shows the image; boxes converted from the stored pixels at import); decoding "
        "applies meta.exif_orientation",
    }


def _class_table(importer: Importer, options: ImportOptions, seen: set[str]) -> list[str]:
    if importer.counts:
        lo, hi = options.count_range()
        return [str(c) for c in range(lo, hi + 1)]
    own = importer.class_order()
    if own is not None:
        return own
    if options.classes:
        return list(options.classes)
    return sorted(seen)


def _rewrite_with_indices(
    tmp: Path, dest: Path, classes: list[str], fields: tuple[str, ...]
) -> None:
    """Class names into class indices in the task's label ``fields`` (a count stays)."""
    index = {c: i for i, c in enumerate(classes)}
    with open(tmp, encoding="utf-8") as src, atomic_open(dest, "w") as f:
        for line in src:
            obj = json.loads(line)
            if "label" in fields:
                obj["label"] = index[obj["label"]]
            if "labels" in fields:
                obj["labels"] = [index[n] for n in obj.get("labels", [])]
                obj.setdefault("boxes", [])
            f.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")


def _relative_to_root(path: Path, image_root: Path) -> Path:
    """``path`` relative to the (resolved) image root; cheap string work on the hot path,
    symlinks resolved only when the plain absolute path is not under the root."""
    plain = os.path.abspath(path)
    root = str(image_root)
    if plain.startswith(root + os.sep):
        return Path(plain[len(root) + 1 :])
    real = path.resolve()
    try:
        return real.relative_to(image_root)
    except ValueError:
        return Path(os.path.relpath(real, image_root))


def _relative_root(image_root: Path, out: Path) -> str:
    try:
        return os.path.relpath(image_root, out.resolve())
    except ValueError:  # different drives on Windows
        return str(image_root)
