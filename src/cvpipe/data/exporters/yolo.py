"""``yolo``: Ultralytics YOLO layout with text labels.

Layout (a dataset with splits)::

    OUT/images/<split>/<name>.<ext>     links to the images (copies with --copy)
    OUT/labels/<split>/<name>.txt       one line per box: "class cx cy w h" (0..1)
    OUT/<split>.txt                     image list of the split (./images/<split>/...)
    OUT/data.yaml                       path, train/val/test (the list files), names, nc

Without splits, images and labels go straight into ``images/`` and ``labels/`` and
data.yaml has no train/val entries (run ``cvpipe split`` first to train with it).
Records without a split, in a dataset that has splits, go to ``images/unassigned/``.

Ultralytics finds a label by replacing ``images`` with ``labels`` in the image path, so
the images must sit under OUT/images: they are symbolic links to the originals by
default and copies with ``--copy``. Images without boxes get an empty label file.
YOLO keeps no per-box flags (``difficult``, ``iscrowd``); coordinates are written with 6
decimals.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import ClassVar

import yaml

from cvpipe.data import boxes as B
from cvpipe.data.exporters.base import EXPORTERS, Exporter, export_relpaths, tracked
from cvpipe.data.manifest import Record, Task
from cvpipe.io import atomic_write_text


@EXPORTERS.register("yolo")
class YoloExporter(Exporter):
    """Writes detect datasets in the Ultralytics YOLO layout."""

    tasks: ClassVar[tuple[Task, ...]] = ("detect",)

    def write(self) -> None:
        groups = self.by_split()
        has_split = any(s is not None for s, _ in groups)
        lists: dict[str, str] = {}
        for split, records in groups:
            folder = split if split is not None else ("unassigned" if has_split else "")
            names = export_relpaths(records, strip=(folder,) if folder else ())
            lines = []
            for rec in tracked(records, f"yolo {split or 'all'}"):
                rel = PurePosixPath(folder) / names[rec.id] if folder else names[rec.id]
                self.place_image(rec, self.out / "images" / rel)
                label = self.out / "labels" / rel.with_suffix(".txt")
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(self._label(rec), encoding="utf-8")
                lines.append(f"./images/{rel.as_posix()}\n")
            if split is not None:
                atomic_write_text(self.out / f"{split}.txt", "".join(lines))
                lists[split] = f"{split}.txt"
        data: dict[str, object] = {"path": str(self.final)}
        data.update(lists)
        data["names"] = dict(enumerate(self.dataset.classes))
        data["nc"] = len(self.dataset.classes)
        head = "# written by cvpipe export-data\n"
        if not has_split:
            head += "# no train/val split: run 'cvpipe split' and export again to train with it\n"
        atomic_write_text(
            self.out / "data.yaml", head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        )

    def _label(self, rec: Record) -> str:
        out = []
        for box, label in zip(rec.boxes or [], rec.labels or [], strict=True):
            cx, cy, w, h = B.xyxy_to_cxcywh_norm(box, rec.width, rec.height)
            out.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        return "".join(out)
