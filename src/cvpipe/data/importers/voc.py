"""``voc``: Pascal VOC XML, one file per image (LabelImg output, VOCdevkit folders).

SOURCE is either

- a folder searched recursively (sorted) for ``*.xml`` files (LabelImg, flat folders); a
  ``train``/``val``/``test`` folder on the way to an XML file sets its split (the TF
  object-detection layout ``images/train/*.xml``);
- a folder with an ``Annotations/`` (or ``annotations/``) subfolder holding the XML files:
  VOCdevkit's ``Annotations/`` + ``JPEGImages/`` (the default image folder) +
  ``ImageSets/Main/{train,val,test}.txt`` (which set the splits), or the common
  ``annotations/`` + ``images/``. Record ids are then relative to the annotation folder.

Real files are messy, so the image of an XML file is looked up in this order:
``<filename>`` next to the XML and in the image folder (``--images``), the ``<path>``
itself when it exists, the XML's own stem with any image extension, and the base name of
a Windows ``<path>`` (``C:\\Users\\x\\burger_1.jpg``). When none of these is there, the
same names are looked up anywhere under SOURCE (and ``--images``) in an
:class:`~cvpipe.data.image_index.ImageIndex` built once, streamed; a name found in more
than one folder is ``image_ambiguous`` in the report, with every path, which one was used
(the one sharing a folder name such as ``train`` with the XML, else the first in sorted
order) and that ``--images FOLDER`` decides. A ``<size>`` that disagrees with the image
header (0x0 is common) is replaced by the real size and reported.

Coordinates follow the VOC pixel convention (1-based, inclusive), so a box
``xmin, ymin, xmax, ymax`` becomes ``[xmin - 1, ymin - 1, xmax, ymax]`` in cvpipe's
0-based xyxy; the ``voc`` exporter adds the 1 back, so round trips are exact.
``difficult`` and ``truncated`` are kept per box in ``meta["box_meta"]``. Class order is
``--classes``, else ``SOURCE/classes.txt`` when present (the exporter writes one), else
sorted names.
"""

from __future__ import annotations

import itertools
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import ClassVar

from cvpipe.data.image_index import ImageIndex, closest
from cvpipe.data.importers.base import IMPORTERS, Importer, ImportOptions, RawRecord
from cvpipe.data.importers.imagefolder import SPLIT_ALIASES
from cvpipe.data.manifest import SPLITS, Task
from cvpipe.data.problems import ProblemLog
from cvpipe.errors import DatasetError
from cvpipe.images import IMAGE_EXTENSIONS, is_image_file

MAX_XML_BYTES = 10 * 1024 * 1024
CLASSES_FILE = "classes.txt"
_COORDS = ("xmin", "ymin", "xmax", "ymax")


@IMPORTERS.register("voc")
class VocImporter(Importer):
    """Pascal VOC / LabelImg XML importer (task ``detect``)."""

    default_task: ClassVar[Task] = "detect"
    tasks: ClassVar[tuple[Task, ...]] = ("detect",)

    def __init__(self, source: Path, options: ImportOptions, problems: ProblemLog) -> None:
        super().__init__(source, options, problems)
        if not self.source.is_dir():
            raise DatasetError(
                f"{self.source}: voc expects a folder of Pascal VOC .xml files "
                "(LabelImg output, or a VOCdevkit folder with Annotations/)"
            )
        ann_dir = _annotation_dir(self.source)
        self.voc_layout = ann_dir is not None
        self.ann_root = ann_dir or self.source
        images = Path(options.images) if options.images else None
        if images is not None and not images.is_dir():
            raise DatasetError(f"{images}: --images folder not found")
        if images is None and self.voc_layout and (self.source / "JPEGImages").is_dir():
            images = self.source / "JPEGImages"
        self.images_dir = images
        # directory → {file name (and "\0" + lower-cased name): actual name}; plain strings
        # keep this index small for folders of 100k+ images
        self._listings: dict[Path, dict[str, str]] = {}
        self._seen: set[str] = set()
        # every image under SOURCE (and --images) by file name; built on the first miss
        roots = [self.source] + ([images] if images is not None else [])
        self._index = ImageIndex(roots)

    def image_root(self) -> Path:
        return self.images_dir or self.source

    # -- walking ------------------------------------------------------------------------
    def records(self) -> Iterator[RawRecord]:
        splits = self._image_sets()
        xmls = _walk_xml(self.ann_root)
        first = next(xmls, None)
        if first is None:
            raise DatasetError(
                f"{self.ann_root}: no .xml files found (expected Pascal VOC annotations, one per image)"
            )
        used: set[str] = set()
        for xml in itertools.chain([first], xmls):
            rec = self._read(Path(xml), splits)
            if rec is not None:
                used.add(os.path.abspath(rec.path))
                yield rec
        self._report_unannotated(used)

    def _image_sets(self) -> dict[str, str]:
        """``ImageSets/Main/{train,val,test}.txt`` → {image id: split} (VOCdevkit only)."""
        main = self.source / "ImageSets" / "Main"
        out: dict[str, str] = {}
        if not self.voc_layout or not main.is_dir():
            return out
        for split in SPLITS:
            path = main / f"{split}.txt"
            if not path.is_file():
                continue
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                fields = line.split()
                if not fields:
                    continue
                image_id = fields[0]
                if image_id in out and out[image_id] != split:
                    self.problems.add(
                        path,
                        "split_conflict",
                        f"{image_id!r} is listed in both {out[image_id]}.txt and {split}.txt",
                        f"kept in {out[image_id]}",
                        line=lineno,
                    )
                    continue
                out[image_id] = split
        return out

    def _read(self, xml: Path, splits: dict[str, str]) -> RawRecord | None:
        root = self._parse(xml)
        if root is None:
            return None
        rel = PurePosixPath(xml.relative_to(self.ann_root).with_suffix("").as_posix())
        image = self._find_image(
            xml, rel, root.findtext("filename") or "", root.findtext("path") or ""
        )
        if image is None:
            return None
        info = self.probe_image(image, xml)
        if info is None:
            return None
        self._check_size(xml, root, info.width, info.height)
        boxes: list[list[float]] = []
        labels: list[str] = []
        box_meta: list[dict[str, int]] = []
        for i, obj in enumerate(root.findall("object")):
            parsed = self._object(xml, i, obj)
            if parsed is None:
                continue
            name, box, flags = parsed
            boxes.append(box)
            labels.append(name)
            box_meta.append(flags)
        if splits:
            split = splits.get(rel.as_posix())
        else:
            split = next(
                (SPLIT_ALIASES[p.lower()] for p in rel.parent.parts if p.lower() in SPLIT_ALIASES),
                None,
            )
        return RawRecord(
            id=rel.as_posix(),
            path=image,
            split=split,
            boxes=boxes,
            labels=labels,
            meta={"box_meta": box_meta} if box_meta else {},
            info=info,
            where=str(xml),
        )

    def _parse(self, xml: Path) -> ET.Element | None:
        size = xml.stat().st_size
        if size > MAX_XML_BYTES:
            self.problems.add(
                xml,
                "xml_too_large",
                f"annotation file is {size / 2**20:.1f} MB; VOC files are a few KB (limit 10 MB)",
                "skipped file",
                fatal=True,
            )
            return None
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            line = exc.position[0] if exc.position else None
            self.problems.add(
                xml, "xml_invalid", f"invalid XML: {exc}", "skipped file", line=line, fatal=True
            )
            return None
        if root.tag != "annotation":
            self.problems.add(
                xml,
                "not_voc",
                f"root element is <{root.tag}>, expected <annotation>",
                "skipped file",
                fatal=True,
            )
            return None
        return root

    # -- image lookup -------------------------------------------------------------------
    def _dirs(self, xml: Path, rel: PurePosixPath) -> list[Path]:
        dirs = [xml.parent]
        if self.images_dir is not None:
            dirs += [self.images_dir / rel.parent, self.images_dir]
        out: list[Path] = []
        for d in dirs:
            if d not in out:
                out.append(d)
        return out

    def _lookup(self, dirs: list[Path], names: list[str]) -> Path | None:
        """First ``dir/name`` that exists: exact name first, then case-insensitive."""
        for d in dirs:  # the common case needs no directory index at all
            for n in names:
                if d not in self._listings and is_image_file(n) and os.path.isfile(d / n):
                    return d / n
        for d in dirs:
            listing = self._listing(d)
            for n in names:
                if n in listing:
                    return d / n
            for n in names:
                hit = listing.get("\0" + n.lower())
                if hit is not None:
                    return d / hit
        return None

    def _listing(self, d: Path) -> dict[str, str]:
        if d not in self._listings:
            table: dict[str, str] = {}
            if d.is_dir():
                with os.scandir(d) as it:
                    names = sorted(e.name for e in it if e.is_file() and is_image_file(e.name))
                for name in names:
                    table[name] = name
                    table.setdefault("\0" + name.lower(), name)
            self._listings[d] = table
        return self._listings[d]

    def _find_image(
        self, xml: Path, rel: PurePosixPath, filename: str, path_text: str
    ) -> Path | None:
        dirs = self._dirs(xml, rel)
        fname = PureWindowsPath(filename.strip()).name  # base name, either separator
        found = self._lookup(dirs, [fname]) if fname else None
        how = "<filename>"
        if found is None and path_text.strip():
            literal = Path(path_text.strip())
            literal = literal if literal.is_absolute() else xml.parent / literal
            if is_image_file(literal) and literal.is_file():
                found, how = literal, "<path>"
        if found is None:
            found = self._lookup(dirs, [rel.name + ext for ext in IMAGE_EXTENSIONS])
            how = "the XML file's name"
        win_name = PureWindowsPath(path_text.strip()).name if path_text.strip() else ""
        if found is None and win_name:
            found = self._lookup(dirs, [win_name])
            how = "the base name of <path>"
        if found is None:
            found, how = self._search_tree(xml, fname, rel.name, win_name)
        if found is None:
            tried = ", ".join(str(d) for d in dirs) + f" or anywhere under {self.source}"
            names = " or ".join(
                repr(n) for n in dict.fromkeys(filter(None, [fname, rel.name + ".*", win_name]))
            )
            self.problems.add(
                xml,
                "image_missing",
                f"image not found: looked for {names} in {tried}"
                + (
                    " (pass --images FOLDER if the images are elsewhere)"
                    if self.images_dir is None
                    else ""
                ),
                "skipped image",
                field="filename",
                fatal=True,
            )
            return None
        if fname and found.name != fname:
            self.problems.add(
                xml,
                "filename_mismatch",
                f"<filename> {filename!r} not found; matched {found.name!r} by {how}",
                f"used {found}",
                field="filename",
            )
        return found

    def _search_tree(
        self, xml: Path, fname: str, stem: str, win_name: str
    ) -> tuple[Path | None, str]:
        """The same names as the folder lookups, anywhere under SOURCE (and --images)."""
        tries = [
            ([fname], "<filename> found elsewhere under the source"),
            ([stem + ext for ext in IMAGE_EXTENSIONS], "the XML file's name, found elsewhere"),
            ([win_name], "the base name of <path>, found elsewhere"),
        ]
        for names, how in tries:
            for name in names:
                if not name or not is_image_file(name):
                    continue
                hits = self._index.find(name)
                if len(hits) == 1:
                    return hits[0], how
                if hits:
                    return self._ambiguous(xml, name, hits), how
        return None, ""

    def _ambiguous(self, xml: Path, name: str, hits: list[Path]) -> Path:
        chosen, shared = closest(hits, xml.parent, self.source)
        why = (
            f"its folder shares {shared!r} with the XML's"
            if shared
            else "the first in sorted order"
        )
        self.problems.add(
            xml,
            "image_ambiguous",
            f"{name!r} is in {len(hits)} folders: " + ", ".join(str(h) for h in hits),
            f"used {chosen} ({why}); pass --images FOLDER to choose the image folder",
            field="filename",
        )
        return chosen

    def _report_unannotated(self, used: set[str]) -> None:
        roots = [self.images_dir] if self.images_dir is not None else []
        if not self.voc_layout or self.images_dir is None:
            roots.append(self.source)
        seen: set[str] = set()
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith(".") or not is_image_file(name):
                        continue
                    plain = os.path.abspath(os.path.join(dirpath, name))
                    if plain in used or plain in seen:
                        continue
                    seen.add(plain)
                    self.problems.add(
                        plain, "no_annotation", "image has no VOC .xml file", "left out"
                    )

    # -- fields ---------------------------------------------------------------------------
    def _check_size(self, xml: Path, root: ET.Element, width: int, height: int) -> None:
        w = _int_or_none(root.findtext("size/width"))
        h = _int_or_none(root.findtext("size/height"))
        if (w, h) != (width, height):
            said = f"{w}x{h}" if w is not None and h is not None else "missing"
            self.problems.add(
                xml,
                "size_mismatch",
                f"<size> is {said} but the image is {width}x{height}",
                f"used real size {width}x{height}",
                field="size",
            )

    def _object(
        self, xml: Path, i: int, obj: ET.Element
    ) -> tuple[str, list[float], dict[str, int]] | None:
        name = (obj.findtext("name") or "").strip()
        where = f"object[{i}]"
        if not name:
            self.problems.add(
                xml,
                "object_no_name",
                f"{where} has no <name>",
                "skipped object",
                field=f"{where}.name",
                fatal=True,
            )
            return None
        wanted = self.options.classes
        if wanted and name not in wanted:
            self.problems.add(
                xml,
                "class_not_selected",
                f"{where} class {name!r} not in --classes",
                "left out",
                field=f"{where}.name",
            )
            return None
        bnd = obj.find("bndbox")
        if bnd is None:
            self.problems.add(
                xml,
                "box_missing",
                f"{where} ({name}) has no <bndbox>",
                "skipped object",
                field=f"{where}.bndbox",
                fatal=True,
            )
            return None
        values: list[float] = []
        for key in _COORDS:
            text = (bnd.findtext(key) or "").strip()
            try:
                v = float(text)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                self.problems.add(
                    xml,
                    "bad_value",
                    f"{where} ({name}) <{key}> is {text!r}, expected a number",
                    "skipped object",
                    field=f"{where}.bndbox.{key}",
                    fatal=True,
                )
                return None
            values.append(v)
        xmin, ymin, xmax, ymax = values
        flags = {
            "difficult": self._flag(xml, obj, where, "difficult"),
            "truncated": self._flag(xml, obj, where, "truncated"),
        }
        self._seen.add(name)
        return name, [xmin - 1.0, ymin - 1.0, xmax, ymax], flags

    def _flag(self, xml: Path, obj: ET.Element, where: str, key: str) -> int:
        text = (obj.findtext(key) or "0").strip() or "0"
        value = _int_or_none(text)
        if value is None or value not in (0, 1):
            self.problems.add(
                xml,
                "bad_value",
                f"{where} <{key}> is {text!r}, expected 0 or 1",
                "used 0",
                field=f"{where}.{key}",
            )
            return 0
        return value

    # -- classes ------------------------------------------------------------------------
    def class_order(self) -> list[str] | None:
        if self.options.classes:
            return list(self.options.classes)
        listed = self.source / CLASSES_FILE
        if not listed.is_file():
            return None
        names = [n.strip() for n in listed.read_text(encoding="utf-8").splitlines() if n.strip()]
        names = list(dict.fromkeys(names))
        extra = sorted(self._seen - set(names))
        for name in extra:
            self.problems.add(
                listed,
                "class_not_listed",
                f"class {name!r} is used but not listed",
                "appended to the class list",
            )
        return names + extra


def _annotation_dir(source: Path) -> Path | None:
    """VOCdevkit's ``Annotations/``, or an ``annotations/`` child of ``source`` (any case)
    that holds XML files (one holding, say, COCO JSON leaves the whole tree searched)."""
    exact = source / "Annotations"
    if exact.is_dir():
        return exact
    with os.scandir(source) as it:
        found = sorted(e.name for e in it if e.is_dir() and e.name.lower() == "annotations")
    for name in found:
        if next(_walk_xml(source / name), None) is not None:
            return source / name
    return None


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        v = float(text.strip())
    except ValueError:
        return None
    return int(v) if math.isfinite(v) and v.is_integer() else None


def _walk_xml(root: Path) -> Iterator[str]:
    """``.xml`` files under ``root`` in sorted order, streamed folder by folder."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.lower().endswith(".xml") and not name.startswith("."):
                yield os.path.join(dirpath, name)
