"""``yolo``: YOLO / Ultralytics text labels, one ``.txt`` per image.

SOURCE is a folder (or its ``data.yaml``). Recognised layouts:

- ``images/`` + ``labels/`` (no split), or ``images/{train,val,test}/`` +
  ``labels/{train,val,test}/`` (split from the folder);
- an Ultralytics ``data.yaml`` whose ``train:``/``val:``/``test:`` entries are image
  folders or list files (one image path a line), resolved against ``path:`` when that
  folder exists, else against the YAML's folder; images under ``SOURCE/images`` that no
  entry lists are imported too (split from their folder, else none);
- images and ``.txt`` files side by side.

As in Ultralytics, an image's label file is its path with the last ``images`` folder
replaced by ``labels`` and the extension by ``.txt``. Each line is
``class cx cy w h`` (normalised 0..1). A missing label file means "no objects" (the
image is kept as a negative and reported as ``no_label_file``).

Class names come from ``names:`` in data.yaml (a list, or a mapping ``{0: name}``), else
``classes.txt`` (one name a line), else the class ids themselves (reported).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import yaml

from cvpipe.data import boxes as B
from cvpipe.data.importers.base import IMPORTERS, Importer, ImportOptions, RawRecord
from cvpipe.data.importers.imagefolder import SPLIT_ALIASES
from cvpipe.data.manifest import Task
from cvpipe.data.problems import ProblemLog
from cvpipe.errors import ConfigError, DatasetError, DatasetFormatError
from cvpipe.images import is_image_file

SPLIT_KEYS = {"train": "train", "val": "val", "valid": "val", "test": "test"}
_TOL = 1e-6


@IMPORTERS.register("yolo")
class YoloImporter(Importer):
    """YOLO text-label importer (task ``detect``)."""

    default_task: ClassVar[Task] = "detect"
    tasks: ClassVar[tuple[Task, ...]] = ("detect",)

    def __init__(self, source: Path, options: ImportOptions, problems: ProblemLog) -> None:
        super().__init__(source, options, problems)
        self.yaml_path: Path | None
        if self.source.is_file():
            if self.source.suffix.lower() not in (".yaml", ".yml"):
                raise DatasetError(
                    f"{self.source}: yolo expects a folder (images/ + labels/) or its data.yaml"
                )
            self.root, self.yaml_path = self.source.parent, self.source
        else:
            self.root, self.yaml_path = self.source, _find_yaml(self.source)
        self.data: dict[str, Any] = _read_yaml(self.yaml_path) if self.yaml_path else {}
        self.names = self._names()
        self._max_id = -1
        if self.names is None:
            self.problems.add(
                self.root,
                "no_class_names",
                "no data.yaml with names: and no classes.txt",
                "named classes by their ids",
            )
        if options.classes and self.names is not None:
            missing = [c for c in options.classes if c not in self.names]
            if missing:
                raise ConfigError(
                    f"--classes {missing} are not class names of {self.source}; valid: {', '.join(self.names)}"
                )

    def image_root(self) -> Path:
        return self.root

    # -- classes ------------------------------------------------------------------------
    def _names(self) -> list[str] | None:
        names = self.data.get("names")
        where = self.yaml_path
        if names is None:
            listed = self.root / "classes.txt"
            if listed.is_file():
                return [
                    n.strip() for n in listed.read_text(encoding="utf-8").splitlines() if n.strip()
                ]
            return None
        if isinstance(names, dict):
            try:
                table = {int(k): str(v) for k, v in names.items()}
            except (TypeError, ValueError):
                raise DatasetFormatError(
                    "names: keys must be class ids 0..N-1", path=where, field="names"
                ) from None
            if sorted(table) != list(range(len(table))):
                raise DatasetFormatError(
                    f"names: ids {sorted(table)} are not 0..{len(table) - 1}",
                    path=where,
                    field="names",
                )
            out = [table[i] for i in range(len(table))]
        elif isinstance(names, list):
            out = [str(n) for n in names]
        else:
            raise DatasetFormatError(
                "names: expected a list or a mapping {0: name}", path=where, field="names"
            )
        nc = self.data.get("nc")
        if nc is not None and nc != len(out):
            self.problems.add(
                where or self.root,
                "nc_mismatch",
                f"nc is {nc} but names has {len(out)} entries",
                f"used the {len(out)} names",
                field="nc",
            )
        return out

    def class_order(self) -> list[str] | None:
        if self.options.classes:
            return list(self.options.classes)
        if self.names is not None:
            return self.names
        return [str(i) for i in range(self._max_id + 1)]

    # -- images -------------------------------------------------------------------------
    def records(self) -> Iterator[RawRecord]:
        seen: dict[str, str | None] = {}
        left_out: Counter[str] = Counter()
        for split, img in self._images():
            key = os.path.abspath(img)
            if key in seen:
                if seen[key] != split:
                    self.problems.add(
                        img,
                        "split_conflict",
                        f"image listed in {seen[key]} and {split}",
                        f"kept in {seen[key]}",
                    )
                continue
            seen[key] = split
            rec = self._record(img, split, left_out)
            if rec is not None:
                yield rec
        for name, n in sorted(left_out.items()):
            self.problems.add(
                self.root,
                "class_not_selected",
                f"{n} boxes of class {name!r} (not in --classes)",
                "left out",
            )

    def _images(self) -> Iterator[tuple[str | None, Path]]:
        entries = {SPLIT_KEYS[k]: v for k, v in self.data.items() if k in SPLIT_KEYS and v}
        images_dir = self.root / "images"
        if entries:
            base = self._base()
            for split in ("train", "val", "test"):
                items = entries.get(split)
                for item in items if isinstance(items, list) else [items] if items else []:
                    yield from ((split, p) for p in self._entry(base, str(item), split))
        if images_dir.is_dir():
            yield from ((_split_from(p, images_dir), p) for p in _walk(images_dir))
        elif not entries:
            labels_dir = self.root / "labels"
            yield from (
                (_split_from(p, self.root), p)
                for p in _walk(self.root)
                if labels_dir not in p.parents
            )

    def _base(self) -> Path:
        assert self.yaml_path is not None  # entries come from the YAML
        p = self.data.get("path")
        if p:
            base = Path(str(p))
            base = base if base.is_absolute() else self.yaml_path.parent / base
            if base.is_dir():
                return base
        return self.yaml_path.parent

    def _entry(self, base: Path, item: str, split: str) -> list[Path]:
        path = Path(item) if Path(item).is_absolute() else base / item
        if path.is_dir():
            return list(_walk(path))
        if path.is_file() and path.suffix.lower() == ".txt":
            out = []
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    p = Path(line)
                    out.append(p if p.is_absolute() else path.parent / p)
            return out
        self.problems.add(
            self.yaml_path or self.root,
            "split_path_missing",
            f"{split}: {item!r} is neither an image folder nor a list file ({path})",
            "skipped split",
            field=split,
            fatal=True,
        )
        return []

    # -- labels -------------------------------------------------------------------------
    def _record(self, img: Path, split: str | None, left_out: Counter[str]) -> RawRecord | None:
        info = self.probe_image(img)
        if info is None:
            return None
        label_file = label_path(img)
        boxes: list[list[float]] = []
        labels: list[str] = []
        if not label_file.is_file():
            self.problems.add(
                img, "no_label_file", f"no label file {label_file}", "kept as a negative (no boxes)"
            )
        else:
            try:
                text = label_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self.problems.add(
                    label_file,
                    "label_unreadable",
                    f"cannot read label file: {exc}",
                    "skipped image",
                    fatal=True,
                )
                return None
            for lineno, line in enumerate(text.splitlines(), start=1):
                parsed = self._line(label_file, lineno, line)
                if parsed is None:
                    continue
                name, norm = parsed
                if self.options.classes and name not in self.options.classes:
                    left_out[name] += 1
                    continue
                boxes.append(B.cxcywh_norm_to_xyxy(norm, info.width, info.height))
                labels.append(name)
        try:
            rec_id = img.relative_to(self.root).with_suffix("").as_posix()
        except ValueError:
            rec_id = Path(os.path.relpath(img, self.root)).with_suffix("").as_posix()
        return RawRecord(
            id=rec_id,
            path=img,
            split=split,
            boxes=boxes,
            labels=labels,
            info=info,
            where=str(label_file if label_file.is_file() else img),
        )

    def _line(self, path: Path, lineno: int, line: str) -> tuple[str, list[float]] | None:
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            return None

        def bad(kind: str, msg: str, field: str | None = None) -> None:
            self.problems.add(path, kind, msg, "skipped line", line=lineno, field=field, fatal=True)

        if len(fields) != 5:
            bad(
                "bad_line",
                f"expected 5 fields 'class cx cy w h', got {len(fields)}: {line.strip()[:60]!r}",
            )
            return None
        try:
            values = [float(v) for v in fields]
        except ValueError:
            bad("bad_line", f"not a number in {line.strip()[:60]!r}")
            return None
        cls, norm = values[0], values[1:]
        if not math.isfinite(cls) or not cls.is_integer() or cls < 0:
            bad("bad_line", f"class {fields[0]!r} is not a class id", "class")
            return None
        cid = int(cls)
        if self.names is not None and cid >= len(self.names):
            bad(
                "class_out_of_range",
                f"class id {cid} is not in 0..{len(self.names) - 1} ({len(self.names)} names)",
                "class",
            )
            return None
        if not all(math.isfinite(v) and -_TOL <= v <= 1 + _TOL for v in norm):
            bad(
                "value_out_of_range",
                f"cx cy w h {fields[1:]} are not all within 0..1 (normalised)",
                "box",
            )
            return None
        self._max_id = max(self._max_id, cid)
        return (self.names[cid] if self.names is not None else str(cid)), norm


def label_path(img: Path) -> Path:
    """The label file of an image (Ultralytics rule: last ``images`` folder → ``labels``)."""
    parts = list(img.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return img.with_suffix(".txt")


def _find_yaml(root: Path) -> Path | None:
    for name in ("data.yaml", "data.yml"):
        if (root / name).is_file():
            return root / name
    for p in sorted(root.glob("*.y*ml")):
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and "names" in data:
            return p
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise DatasetFormatError(f"invalid YAML: {exc.problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise DatasetFormatError(f"invalid YAML: {exc}", path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DatasetFormatError("expected a mapping (names:, train:, val:)", path=path)
    return data


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_file(name):
                yield Path(dirpath) / name


def _split_from(path: Path, base: Path) -> str | None:
    parts = path.relative_to(base).parts
    return SPLIT_ALIASES.get(parts[0].lower()) if len(parts) > 1 else None
