"""The dataset directory: ``dataset.yaml`` + ``manifest.jsonl``.

One record per image::

    {"id": "img_0001", "file": "images/0001.jpg", "width": 640, "height": 480,
     "split": "train", "boxes": [[x1, y1, x2, y2], ...], "labels": [0, 2], "meta": {...}}

- ``file`` is relative to the dataset's ``image_root`` (itself relative to the dataset
  directory, or absolute). Images are referenced, not copied.
- Boxes are xyxy in absolute pixels, always; converters live in :mod:`cvpipe.data.boxes`.
- classify records carry ``label`` (class index); count records carry ``count`` (the
  class is ``classes.index(str(count))``); detect records carry ``boxes`` + ``labels``
  and optionally ``meta["box_meta"]``, one dict per box (``difficult``, ``iscrowd``,
  ``truncated``, ``occluded``, ...).
- ``meta["exif_orientation"]`` (2-8, only in datasets imported with ``--exif apply``):
  the EXIF orientation the image file carries. ``width``, ``height`` and boxes are then
  in the oriented frame (what a photo viewer shows), and every decode of the record
  (:meth:`Dataset.load_image`) turns the stored pixels the same way; see
  :mod:`cvpipe.orientation`.

Example:
    >>> ds = Dataset.load("datasets/bins")  # doctest: +SKIP
    >>> ds.info.task, ds.info.classes, len(ds)  # doctest: +SKIP
    ('count', ['1', '2', '3', '4', '5'], 10441)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

if TYPE_CHECKING:
    from PIL import Image

from cvpipe.errors import DatasetError, DatasetFormatError
from cvpipe.io import atomic_open, atomic_write_text
from cvpipe.tasks.registry import get_task, task_names

#: A task's name (``classify``, ``count``, ``detect`` or a plug-in's, see :mod:`cvpipe.tasks`).
Task = str
SPLITS = ("train", "val", "test")
SCHEMA_VERSION = 1
MANIFEST = "manifest.jsonl"
DATASET_YAML = "dataset.yaml"


@dataclass(slots=True)
class Record:
    """One image of a dataset. Boxes are ``[x1, y1, x2, y2]`` in absolute pixels."""

    id: str
    file: str
    width: int
    height: int
    split: str | None = None
    label: int | None = None
    count: int | None = None
    boxes: list[list[float]] | None = None
    labels: list[int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def orientation(self) -> int | None:
        """EXIF orientation applied when decoding (``meta["exif_orientation"]``), else None."""
        value = self.meta.get("exif_orientation")
        return value if isinstance(value, int) and 2 <= value <= 8 else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "split": self.split,
        }
        if self.label is not None:
            out["label"] = self.label
        if self.count is not None:
            out["count"] = self.count
        if self.boxes is not None:
            out["boxes"] = [[round(float(v), 3) for v in b] for b in self.boxes]
            out["labels"] = list(self.labels or [])
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Record:
        return cls(
            id=str(obj["id"]),
            file=str(obj["file"]),
            width=int(obj["width"]),
            height=int(obj["height"]),
            split=obj.get("split"),
            label=obj.get("label"),
            count=obj.get("count"),
            boxes=obj.get("boxes"),
            labels=obj.get("labels"),
            meta=obj.get("meta") or {},
        )


class SourceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    path: str


class DatasetInfo(BaseModel):
    """Contents of ``dataset.yaml``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    task: Task
    classes: list[str]
    image_root: str = "."
    source: SourceInfo | None = None
    import_report: dict[str, Any] = {}
    split: dict[str, Any] | None = None
    class_weights: list[float] | None = None
    derived_from: str | None = None
    exif: Literal["apply"] | None = None  # imported with --exif apply (records may turn)
    history: list[str] = []
    schema_version: int = SCHEMA_VERSION

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in task_names():
            raise ValueError(f"unknown task {v!r}; valid: {', '.join(task_names())}")
        return v

    @field_validator("classes")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = [c for c, n in Counter(v).items() if n > 1]
        if dup:
            raise ValueError(f"duplicate class names: {dup}")
        return v


class Dataset:
    """A dataset directory loaded in memory (records are small; images stay on disk).

    Args:
        root: the dataset directory.
        info: parsed ``dataset.yaml``.
        records: manifest records in file order.
    """

    def __init__(self, root: str | Path, info: DatasetInfo, records: list[Record]) -> None:
        self.root = Path(root)
        self.info = info
        self.records = records

    # -- loading / saving -------------------------------------------------------------
    @classmethod
    def load(cls, root: str | Path) -> Dataset:
        """Load ``root/dataset.yaml`` and ``root/manifest.jsonl``.

        Raises:
            DatasetError: the directory or one of its files is missing.
            DatasetFormatError: a malformed line (with its line number) or field.
        """
        root = Path(root)
        info = read_info(root)
        records = list(iter_manifest(root / MANIFEST))
        ds = cls(root, info, records)
        ds.check_labels()
        return ds

    def save(self, root: str | Path | None = None) -> Path:
        """Write dataset.yaml and manifest.jsonl atomically into ``root`` (default: own root)."""
        root = Path(root) if root is not None else self.root
        root.mkdir(parents=True, exist_ok=True)
        write_manifest(root / MANIFEST, self.records)
        write_info(root, self.info)
        return root

    # -- queries ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    @property
    def task(self) -> Task:
        return self.info.task

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    @property
    def output_classes(self) -> list[str]:
        """The classes a model trained on this dataset outputs (:meth:`cvpipe.tasks.Task.output_classes`:
        the dataset's classes, unless the task derives its targets from the records)."""
        return get_task(self.task).output_classes(self.classes)

    @property
    def image_root(self) -> Path:
        r = Path(self.info.image_root)
        return r if r.is_absolute() else Path(os.path.normpath(self.root / r))

    def image_path(self, rec: Record) -> Path:
        """Absolute-or-root-relative path of a record's image file."""
        return self.image_root / rec.file

    def load_image(
        self, rec: Record, mode: str | None = "RGB", draft: tuple[int, int] | None = None
    ) -> Image.Image:
        """Decode a record's image as the manifest describes it: in the record's frame
        (its EXIF orientation applied when the dataset was imported with ``--exif
        apply``), so pixels match ``width``/``height`` and the boxes.

        Args:
            rec: a record of this dataset.
            mode: see :func:`cvpipe.images.decode`.
            draft: JPEG reduced-size decode ``(w, h)`` in the record's frame.

        Raises:
            ImageReadError: missing, unreadable, truncated or corrupt file.
        """
        from cvpipe.images import decode

        return decode(self.image_path(rec), mode, draft=draft, orientation=rec.orientation)

    def class_index(self, rec: Record) -> int:
        """The output class of a record with one class per image (its training target and
        stratification key): an index into :attr:`output_classes`."""
        return get_task(self.task).class_index(rec, self.classes)

    def split_records(self, split: str | None) -> list[Record]:
        return [r for r in self.records if r.split == split]

    def splits(self) -> dict[str | None, int]:
        return dict(Counter(r.split for r in self.records))

    def class_counts(self, split: str | None | Literal["all"] = "all") -> list[int]:
        """Images per class (classify/count) or objects per class (detect), for each of
        :attr:`output_classes` (the classes ``record_classes`` counts)."""
        counts = [0] * len(self.output_classes)
        task = get_task(self.task)
        for r in self.records:
            if split != "all" and r.split != split:
                continue
            for c in task.record_classes(r, self.classes):
                counts[c] += 1
        return counts

    def check_labels(self) -> None:
        """Every label refers to a known class and carries the fields of the task.

        Raises:
            DatasetFormatError: naming the manifest line and the field.
        """
        task = get_task(self.task)
        path = self.root / MANIFEST
        for i, r in enumerate(self.records, start=1):
            problem = task.label_error(r, self.classes)
            if problem is not None:
                raise DatasetFormatError(problem[1], path=path, line=i, field=problem[0])

    def derive(self, records: list[Record], **info_updates: Any) -> Dataset:
        """A new in-memory dataset sharing this one's classes and images."""
        info = self.info.model_copy(update=info_updates)
        return Dataset(self.root, info, records)

    def rebased_info(self, new_root: str | Path) -> DatasetInfo:
        """``info`` with ``image_root`` rewritten so the images resolve from ``new_root``."""
        new_root = Path(new_root)
        target = self.image_root
        if Path(self.info.image_root).is_absolute():
            rel = str(target)
        else:
            rel = os.path.relpath(target.resolve(), new_root.resolve())
        return self.info.model_copy(update={"image_root": rel})

    def manifest_hash(self) -> str:
        """SHA-256 of the canonical manifest (records in order, splits included)."""
        h = hashlib.sha256()
        h.update(json.dumps(self.classes).encode())
        for r in self.records:
            h.update(json.dumps(r.to_json(), sort_keys=True).encode())
            h.update(b"\n")
        return h.hexdigest()


def read_info(root: Path) -> DatasetInfo:
    path = root / DATASET_YAML
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset directory not found (create one with 'cvpipe import')")
    if not path.is_file():
        raise DatasetError(
            f"{path}: missing; is {root} a cvpipe dataset? (create one with 'cvpipe import')"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return DatasetInfo.model_validate(data)
    except yaml.YAMLError as exc:
        raise DatasetFormatError(f"invalid YAML: {exc}", path=path) from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise DatasetFormatError(err["msg"], path=path, field=loc) from None


def write_info(root: Path, info: DatasetInfo) -> None:
    text = yaml.safe_dump(
        info.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True
    )
    atomic_write_text(root / DATASET_YAML, text)


def iter_manifest(path: Path) -> Iterator[Record]:
    """Stream records from a manifest.jsonl, with located errors."""
    if not path.is_file():
        raise DatasetError(f"{path}: manifest missing; re-run 'cvpipe import'")
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(f"invalid JSON: {exc.msg}", path=path, line=i) from None
            try:
                yield Record.from_json(obj)
            except (KeyError, TypeError, ValueError) as exc:
                raise DatasetFormatError(f"bad record: {exc!r}", path=path, line=i) from None


def write_manifest(path: Path, records: Iterable[Record]) -> int:
    """Write records to ``path`` atomically; returns how many were written."""
    n = 0
    with atomic_open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r.to_json(), ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
            n += 1
    return n


def load_dataset(root: str | Path) -> Dataset:
    """Load a dataset directory (alias of :meth:`Dataset.load`)."""
    return Dataset.load(root)
