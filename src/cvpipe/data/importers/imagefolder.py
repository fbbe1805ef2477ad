"""``imagefolder``: one folder per class (torchvision ImageFolder layout).

Two layouts are recognised:

- ``SOURCE/<class>/*.jpg`` — no split assigned;
- ``SOURCE/{train,val,test}/<class>/*.jpg`` — the split is taken from the top folder
  (``valid``/``validation`` count as ``val``). The class list is the union over splits.

Class order is sorted folder names (like torchvision) unless ``--classes`` gives one;
with ``--classes``, other folders are left out and reported. Task ``classify``, or
``count`` when every class folder is an integer (``0``..``5``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from cvpipe.data.importers.base import IMPORTERS, Importer, RawRecord
from cvpipe.data.manifest import Task
from cvpipe.errors import DatasetError
from cvpipe.images import is_image_file

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@IMPORTERS.register("imagefolder")
class ImageFolderImporter(Importer):
    default_task: ClassVar[Task] = "classify"
    tasks: ClassVar[tuple[Task, ...]] = ("classify", "count")

    def _layout(self) -> list[tuple[str | None, Path]]:
        if not self.source.is_dir():
            raise DatasetError(f"{self.source}: imagefolder expects a directory of class folders")
        subdirs = sorted(
            p for p in self.source.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not subdirs:
            raise DatasetError(
                f"{self.source}: no class folders found (expected SOURCE/<class>/image.jpg)"
            )
        split_dirs = [d for d in subdirs if d.name.lower() in SPLIT_ALIASES]
        if split_dirs and len(split_dirs) == len(subdirs):
            return [(SPLIT_ALIASES[d.name.lower()], d) for d in split_dirs]
        return [(None, self.source)]

    def records(self) -> Iterator[RawRecord]:
        wanted = set(self.options.classes or [])
        for split, base in self._layout():
            for class_dir in sorted(
                p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                name = class_dir.name
                if wanted and name not in wanted:
                    self.problems.add(
                        class_dir,
                        "class_not_selected",
                        f"class folder {name!r} not in --classes",
                        "left out",
                    )
                    continue
                if self.counts and self._count(name, class_dir) is None:
                    continue
                for path in sorted(class_dir.rglob("*")):
                    if not path.is_file() or path.name.startswith("."):
                        continue
                    if not is_image_file(path):
                        self.problems.add(
                            path,
                            "not_an_image",
                            f"unexpected file type {path.suffix!r}",
                            "skipped file",
                        )
                        continue
                    rel = path.relative_to(self.source).with_suffix("").as_posix()
                    yield RawRecord(id=rel, path=path, split=split, **self.spec.label_fields(name))

    def _count(self, name: str, class_dir: Path) -> int | None:
        """The count a class folder names, or None (reported) when it is not a count of
        the ``--counts`` range."""
        if not name.isdigit():
            self.problems.add(
                class_dir,
                "class_not_a_count",
                f"folder {name!r} is not an integer count",
                "left out",
                fatal=True,
            )
            return None
        lo, hi = self.options.count_range()
        value = int(name)
        if not lo <= value <= hi:
            self.problems.add(
                class_dir,
                "count_out_of_range",
                f"count {value} outside --counts {self.options.counts}",
                "left out",
            )
            return None
        return value

    def class_order(self) -> list[str] | None:
        if self.options.classes:
            return list(self.options.classes)
        names: set[str] = set()
        for _, base in self._layout():
            names.update(
                p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
        return sorted(names)
