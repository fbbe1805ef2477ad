"""``imagefolder``: one folder per class (torchvision ImageFolder), for classify/count.

Layout::

    OUT/<split>/<class>/<image>     with splits (train, val, test)
    OUT/<class>/<image>             without

Every class gets a folder in every split, even an empty one, so class indices agree
across splits when read back (``cvpipe import imagefolder``, ``--task count`` for a count
dataset). Images are copied by default (portable); ``--link`` makes symbolic links.
"""

from __future__ import annotations

from typing import ClassVar

from cvpipe.data.exporters.base import EXPORTERS, Exporter, tracked
from cvpipe.data.manifest import Task
from cvpipe.errors import DatasetError


@EXPORTERS.register("imagefolder")
class ImageFolderExporter(Exporter):
    """Writes classify and count datasets as class folders."""

    tasks: ClassVar[tuple[Task, ...]] = ("classify", "count")
    copy_by_default: ClassVar[bool] = True

    def write(self) -> None:
        classes = self.dataset.classes
        bad = [
            c for c in classes if c in ("", ".", "..") or "/" in c or "\\" in c or c.startswith(".")
        ]
        if bad:
            raise DatasetError(f"{self.dataset.root}: class names {bad} cannot be folder names")
        groups = self.by_split()
        splits = [s for s, _ in groups]
        if None in splits and len(splits) > 1:
            n = len(dict(groups)[None])
            raise DatasetError(
                f"{self.dataset.root}: {n} images have no split while the others do; an imagefolder "
                "tree cannot hold both; run 'cvpipe split' first"
            )
        for split, records in groups:
            base = self.out / split if split is not None else self.out
            for c in classes:
                (base / c).mkdir(parents=True, exist_ok=True)
            taken: set[str] = set()
            for rec in tracked(records, f"imagefolder {split or 'all'}"):
                folder = classes[self.dataset.class_index(rec)]
                name = self._name(rec.file, folder, taken)
                self.place_image(rec, base / folder / name)

    @staticmethod
    def _name(file: str, folder: str, taken: set[str]) -> str:
        base = file.replace("\\", "/").rsplit("/", 1)[-1]
        stem, dot, ext = base.rpartition(".")
        if not dot:
            stem, ext = base, ""
        name, n = base, 0
        while f"{folder}/{name}".lower() in taken:
            n += 1
            name = f"{stem}_{n}.{ext}" if ext else f"{stem}_{n}"
        taken.add(f"{folder}/{name}".lower())
        return name
