"""``voc``: Pascal VOC XML in the VOCdevkit layout.

Layout::

    OUT/Annotations/<name>.xml          one per image (also images without objects)
    OUT/ImageSets/Main/<split>.txt      image names per split (when the dataset has splits)
    OUT/JPEGImages/<name>.<ext>         only with --copy
    OUT/classes.txt                     class names in order (VOC has no class list)

Each XML has ``<size>`` (with ``<depth>`` from the image mode), ``<path>`` (the image's
absolute path) and one ``<object>`` per box with ``name``, ``difficult``, ``truncated``
(from ``meta["box_meta"]``) and a ``bndbox`` in the VOC 1-based convention
(``xmin = x1 + 1``, ``ymin = y1 + 1``, ``xmax = x2``, ``ymax = y2``), the inverse of the
``voc`` importer, so round trips are exact. Images are referenced by ``<path>`` unless
``--copy`` copies them into JPEGImages/.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import ClassVar

from cvpipe.data.exporters.base import EXPORTERS, Exporter, export_relpaths, fmt_num, tracked
from cvpipe.data.manifest import Record, Task
from cvpipe.images import ImageReadError, probe
from cvpipe.io import atomic_write_text

log = logging.getLogger(__name__)

_DEPTH = {
    "1": 1,
    "L": 1,
    "P": 3,
    "RGB": 3,
    "YCbCr": 3,
    "CMYK": 4,
    "RGBA": 4,
    "LA": 2,
    "I": 1,
    "I;16": 1,
    "F": 1,
}


@EXPORTERS.register("voc")
class VocExporter(Exporter):
    """Writes detect datasets as Pascal VOC XML files."""

    tasks: ClassVar[tuple[Task, ...]] = ("detect",)

    def write(self) -> None:
        names = export_relpaths(self.dataset.records)
        sets: dict[str, list[str]] = {}
        for rec in tracked(self.dataset.records, "voc"):
            rel = names[rec.id]
            voc_id = rel.with_suffix("").as_posix()
            if self.copy_images:
                image = self.final / "JPEGImages" / rel
                self.place_image(rec, self.out / "JPEGImages" / rel)
            else:
                image = self.source_image(rec)
            xml_path = self.out / "Annotations" / f"{voc_id}.xml"
            xml_path.parent.mkdir(parents=True, exist_ok=True)
            xml_path.write_text(self._xml(rec, image), encoding="utf-8")
            if rec.split is not None:
                sets.setdefault(rec.split, []).append(voc_id)
        for split, ids in sets.items():
            atomic_write_text(
                self.out / "ImageSets" / "Main" / f"{split}.txt", "".join(i + "\n" for i in ids)
            )
        atomic_write_text(self.out / "classes.txt", "".join(c + "\n" for c in self.dataset.classes))

    def _depth(self, rec: Record) -> int:
        try:
            return _DEPTH.get(probe(self.source_image(rec)).mode, 3)
        except ImageReadError as exc:
            log.warning("%s: %s; wrote depth 3", exc.path, exc.message)
            return 3

    def _xml(self, rec: Record, image: Path) -> str:
        root = ET.Element("annotation")
        _sub(root, "folder", image.parent.name)
        _sub(root, "filename", image.name)
        _sub(root, "path", str(image))
        _sub(_sub(root, "source"), "database", "cvpipe")
        size = _sub(root, "size")
        _sub(size, "width", str(rec.width))
        _sub(size, "height", str(rec.height))
        _sub(size, "depth", str(self._depth(rec)))
        _sub(root, "segmented", "0")
        box_meta = rec.meta.get("box_meta") or [{} for _ in rec.boxes or []]
        for box, label, flags in zip(rec.boxes or [], rec.labels or [], box_meta, strict=True):
            obj = _sub(root, "object")
            _sub(obj, "name", self.dataset.classes[label])
            _sub(obj, "pose", "Unspecified")
            _sub(obj, "truncated", str(int(flags.get("truncated", 0))))
            _sub(obj, "difficult", str(int(flags.get("difficult", 0))))
            bnd = _sub(obj, "bndbox")
            x1, y1, x2, y2 = box
            for key, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
                _sub(bnd, key, fmt_num(value))
        ET.indent(root, space="\t")
        return ET.tostring(root, encoding="unicode") + "\n"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el
