"""``openimages``: Open Images V7 box annotations (``*-annotations-bbox.csv``).

SOURCE is the box CSV::

    ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside
    000002b66c9c498e,xclick,/m/01g317,1,0.0125,0.195312,0.148438,0.5875,0,1,0,0,0

Only ``ImageID``, ``LabelName``, ``XMin``, ``XMax``, ``YMin`` and ``YMax`` are required;
other columns are ignored. Coordinates are fractions of the image size and become
absolute xyxy pixels using each image's real size (read from its header).

- Images are ``<ImageID>.jpg`` in ``--images`` (default: an ``images/`` folder next to
  the CSV, a ``data/`` folder next to it or next to its folder — the FiftyOne layout
  ``train/labels/detections.csv`` + ``train/data/`` — else the CSV's folder).
- ``--descriptions`` is the class-descriptions CSV (``/m/0cmf2,Airplane``; a header row is
  accepted). Class names are its display names; without it the MIDs are the names.
  Each record's ``meta["mids"]`` maps the names it uses to their MIDs.
- ``--classes`` keeps only those classes, in that order (display names or MIDs); images
  with none of them are left out and counted in one ``class_filtered`` entry.
- Rows with ``Confidence`` below ``--min-confidence`` are ignored (counted in one
  ``low_confidence`` entry).
- ``meta["box_meta"]`` holds per box ``occluded``, ``truncated``, ``group_of``,
  ``depiction`` and ``inside`` (``-1`` when unknown, as Open Images writes it).

Rows are streamed and grouped by ``ImageID``. A cheap first pass checks that the file is
sorted by ``ImageID`` (the official files are); if it is not, the kept rows are grouped
in memory instead, so an image whose rows are scattered still gets all its boxes.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from cvpipe.data.boxes import norm_xxyy_to_xyxy
from cvpipe.data.importers.base import IMPORTERS, Importer, ImportOptions, RawRecord
from cvpipe.data.manifest import Task
from cvpipe.data.problems import ProblemLog
from cvpipe.errors import ConfigError, DatasetError, DatasetFormatError
from cvpipe.registry import suggest

log = logging.getLogger(__name__)

REQUIRED = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
COORDS = ("XMin", "XMax", "YMin", "YMax")
FLAGS = {
    "IsOccluded": "occluded",
    "IsTruncated": "truncated",
    "IsGroupOf": "group_of",
    "IsDepiction": "depiction",
    "IsInside": "inside",
}
IMAGE_EXT = ".jpg"


@dataclass(slots=True)
class _Box:
    """One usable CSV row: class MID, normalised coordinates, flags and its line."""

    mid: str
    xmin: float
    xmax: float
    ymin: float
    ymax: float
    flags: dict[str, int]
    line: int


def read_descriptions(path: Path, problems: ProblemLog) -> dict[str, str]:
    """Read an Open Images class-descriptions CSV into ``{MID: display name}``.

    The official file has no header (``/m/0cmf2,Airplane``); a first row whose first
    cell does not start with ``/`` is taken as a header. Display names shared by several
    MIDs get the MID appended (``Bat (/m/01h44)``) so that every class name is unique.

    Raises:
        DatasetError: the file does not exist.
        DatasetFormatError: the file cannot be read as text.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: --descriptions file not found")
    names: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            for row in reader:
                if not row or not any(cell.strip() for cell in row):
                    continue
                if reader.line_num == 1 and not row[0].startswith("/"):
                    continue  # header row
                if len(row) < 2 or not row[0].strip() or not row[1].strip():
                    problems.add(
                        path,
                        "bad_description",
                        f"expected MID,DisplayName, found {row!r}",
                        "skipped row",
                        line=reader.line_num,
                    )
                    continue
                names[row[0].strip()] = row[1].strip()
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetFormatError(f"cannot read class descriptions: {exc}", path=path) from None
    by_name: dict[str, list[str]] = {}
    for mid, name in names.items():
        by_name.setdefault(name, []).append(mid)
    for name, mids in by_name.items():
        if len(mids) > 1:
            for mid in mids:
                names[mid] = f"{name} ({mid})"
    return names


@IMPORTERS.register("openimages")
class OpenImagesImporter(Importer):
    """Import an Open Images box CSV as a detection dataset.

    Args:
        source: the box annotations CSV.
        options: ``images``, ``descriptions``, ``classes`` and ``min_confidence`` are used.
        problems: where problems are recorded.

    Raises:
        DatasetFormatError: the CSV header lacks a required column (named, with the header).
        ConfigError: a ``--classes`` name is unknown (close names are listed).
        DatasetError: the CSV, ``--images`` or ``--descriptions`` does not exist.
    """

    default_task: ClassVar[Task] = "detect"
    tasks: ClassVar[tuple[Task, ...]] = ("detect",)

    def __init__(self, source: Path, options: ImportOptions, problems: ProblemLog) -> None:
        super().__init__(source, options, problems)
        if not self.source.is_file():
            raise DatasetError(
                f"{self.source}: openimages expects the box CSV (e.g. oidv7-train-annotations-bbox.csv)"
            )
        self.header = self._read_header()
        self.col = {name: i for i, name in enumerate(self.header)}
        self.names = (
            read_descriptions(Path(options.descriptions), problems) if options.descriptions else {}
        )
        self.wanted = self._resolve_classes(options.classes) if options.classes else None
        self.images_dir = self._images_folder()

    # -- setup ----------------------------------------------------------------------------
    def _read_header(self) -> list[str]:
        try:
            with open(self.source, encoding="utf-8-sig", newline="") as f:
                header = next(csv.reader(f), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DatasetFormatError(
                f"cannot read CSV header: {exc}", path=self.source, line=1
            ) from None
        header = [h.strip() for h in header]
        for name in REQUIRED:
            if name not in header:
                raise DatasetFormatError(
                    f"missing required column {name!r}; header found: {','.join(header) or '(empty)'}; "
                    f"expected at least {','.join(REQUIRED)}",
                    path=self.source,
                    line=1,
                    field=name,
                )
        return header

    def _images_folder(self) -> Path:
        if self.options.images:
            images = Path(self.options.images)
            if not images.is_dir():
                raise DatasetError(f"{images}: --images folder not found")
            return images.absolute()
        here = self.source.parent
        for cand in (here / "images", here / "data", here.parent / "data"):
            if cand.is_dir():
                return cand.absolute()
        return here.absolute()

    def image_root(self) -> Path:
        return self.images_dir

    def _resolve_classes(self, classes: list[str]) -> dict[str, str]:
        """``--classes`` entries → ``{MID: class name}`` in the given order."""
        by_name = {name: mid for mid, name in self.names.items()}
        wanted: dict[str, str] = {}
        for c in classes:
            if c.startswith("/"):
                mid = c
            elif c in by_name:
                mid = by_name[c]
            else:
                raise ConfigError(self._unknown_class(c, list(by_name)))
            if mid in wanted:
                raise ConfigError(f"--classes: {c!r} is given twice")
            wanted[mid] = self.names.get(mid, mid)
            if self.names and mid not in self.names:
                self.problems.add(
                    self.options.descriptions or "",
                    "class_not_described",
                    f"{mid} is not in the descriptions file",
                    "used the MID as the class name",
                )
        return wanted

    def _unknown_class(self, name: str, known: list[str]) -> str:
        if not known:
            hint = ""
            fiftyone = self.source.parent.parent / "metadata" / "classes.csv"
            if fiftyone.is_file():
                hint = f" (found {fiftyone})"
            return (
                f"--classes: {name!r} is not a MID (like /m/0cmf2); to select classes by name pass "
                f"--descriptions oidv7-class-descriptions-boxable.csv{hint}"
            )
        lower = name.lower()
        close = [k for k in known if k.lower() == lower] or []
        hint = (
            f"did you mean {' or '.join(repr(k) for k in close)}? "
            if close
            else suggest(name, known)
        )
        return f"--classes: unknown class {name!r} in {self.options.descriptions}; {hint}names are case-sensitive; MIDs like /m/0cmf2 work too"

    def class_order(self) -> list[str] | None:
        return list(self.wanted.values()) if self.wanted is not None else None

    # -- rows -----------------------------------------------------------------------------
    def _lines(self) -> Iterator[tuple[int, str]]:
        """(line number, raw text) of every data line; the header is line 1."""
        with open(self.source, encoding="utf-8-sig", newline="") as f:
            next(f, None)
            yield from enumerate(f, start=2)

    def _split(self, line_no: int, line: str) -> list[str] | None:
        """Fields of one line (plain split, or the csv module when quotes are used)."""
        if '"' not in line:
            return line.rstrip("\r\n").split(",")
        try:
            return next(csv.reader([line]), [])
        except csv.Error as exc:
            self._bad_row(line_no, f"malformed CSV line: {exc}", None)
            return None

    def _image_id(self, line_no: int, line: str) -> str | None:
        """The ImageID of a line without parsing all of it when it is the first column."""
        if self.col["ImageID"] == 0 and not line.startswith('"'):
            return line.partition(",")[0].strip()
        row = self._split(line_no, line)
        i = self.col["ImageID"]
        return row[i].strip() if row is not None and len(row) > i else None

    def _is_sorted(self) -> bool:
        """True when ImageIDs never decrease (the official files), so groups are complete."""
        prev = ""
        first_col = self.col["ImageID"] == 0
        for line_no, line in self._lines():
            if first_col and not line.startswith('"'):
                iid: str | None = line.partition(",")[0].strip()
            else:
                iid = self._image_id(line_no, line) if line.strip() else None
            if iid:
                if iid < prev:
                    return False
                prev = iid
        return True

    def _parse(self, line: int, row: list[str]) -> tuple[str, _Box | None]:
        """Parse a kept row; returns (ImageID, box or None when the row is unusable)."""
        iid = row[self.col["ImageID"]].strip()
        values: list[float] = []
        for name in COORDS:
            text = row[self.col[name]]
            try:
                v = float(text)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                self._bad_row(line, f"{name} {text!r} is not a number", name)
                return iid, None
            values.append(v)
        xmin, xmax, ymin, ymax = values
        for lo, hi, a, b in ((xmin, xmax, "XMin", "XMax"), (ymin, ymax, "YMin", "YMax")):
            if lo > hi:
                self._bad_row(line, f"{a} {lo} is greater than {b} {hi}", a, kind="box_inverted")
                return iid, None
        flags = {key: self._flag(row, col, line) for col, key in FLAGS.items()}
        return iid, _Box(row[self.col["LabelName"]].strip(), xmin, xmax, ymin, ymax, flags, line)

    def _flag(self, row: list[str], col: str, line: int) -> int:
        i = self.col.get(col)
        if i is None or not row[i].strip():
            return -1
        try:
            return int(row[i])
        except ValueError:
            self.problems.add(
                self.source,
                "bad_flag",
                f"{col} {row[i]!r} is not an integer",
                "used -1 (unknown)",
                line=line,
                field=col,
            )
            return -1

    def _bad_row(self, line: int, message: str, field: str | None, kind: str = "bad_row") -> None:
        self.problems.add(
            self.source, kind, message, "skipped box", line=line, field=field, fatal=True
        )

    def _kept_rows(
        self, stats: dict[str, int], other_images: set[str]
    ) -> Iterator[tuple[str, _Box | None]]:
        """Rows that pass the class and confidence filters, parsed; filtered rows are counted.

        With ``--classes``, a line that does not even contain a selected MID is counted
        as filtered without being parsed (the full Open Images CSV has 14.6M rows).
        """
        n_fields = len(self.header)
        i_id, i_label = self.col["ImageID"], self.col["LabelName"]
        i_conf = self.col.get("Confidence")
        min_conf = self.options.min_confidence
        mids = tuple(self.wanted) if self.wanted is not None else ()
        first_col = i_id == 0
        for line_no, line in self._lines():
            if not line.strip():
                continue
            if mids and (
                mids[0] not in line if len(mids) == 1 else not any(m in line for m in mids)
            ):
                stats["class_rows"] += 1
                if first_col and not line.startswith('"'):
                    other_images.add(line.partition(",")[0].strip())
                elif iid := self._image_id(line_no, line):
                    other_images.add(iid)
                continue
            row = self._split(line_no, line)
            if row is None:
                continue
            if len(row) != n_fields:
                msg = f"expected {n_fields} fields as in the header, found {len(row)}"
                self._bad_row(line_no, msg, None)
                continue
            if not row[i_id].strip():
                self._bad_row(line_no, "empty ImageID", "ImageID")
                continue
            if self.wanted is not None and row[i_label].strip() not in self.wanted:
                stats["class_rows"] += 1
                other_images.add(row[i_id].strip())
                continue
            if i_conf is not None and row[i_conf].strip():
                try:
                    conf = float(row[i_conf])
                except ValueError:
                    msg = f"Confidence {row[i_conf]!r} is not a number"
                    self._bad_row(line_no, msg, "Confidence")
                    continue
                if conf < min_conf:
                    stats["low_conf_rows"] += 1
                    continue
            yield self._parse(line_no, row)

    def _groups(
        self, rows: Iterable[tuple[str, _Box | None]], grouped: bool
    ) -> Iterator[tuple[str, list[_Box | None]]]:
        if not grouped:
            log.info("%s is not sorted by ImageID; grouping the kept rows in memory", self.source)
            table: dict[str, list[_Box | None]] = {}
            for iid, box in rows:
                table.setdefault(iid, []).append(box)
            yield from sorted(table.items())
            return
        current: str | None = None
        boxes: list[_Box | None] = []
        for iid, box in rows:
            if iid != current:
                if current is not None:
                    yield current, boxes
                current, boxes = iid, []
            boxes.append(box)
        if current is not None:
            yield current, boxes

    # -- records --------------------------------------------------------------------------
    def records(self) -> Iterator[RawRecord]:
        stats = {"class_rows": 0, "low_conf_rows": 0}
        other_images: set[str] = set()
        kept_images: set[str] = set()
        seen_mids: set[str] = set()
        for iid, group in self._groups(self._kept_rows(stats, other_images), self._is_sorted()):
            kept_images.add(iid)
            boxes = [b for b in group if b is not None]
            if not boxes:
                continue  # every row of this image was unusable (each already reported)
            seen_mids.update(b.mid for b in boxes)
            raw = self._record(iid, boxes)
            if raw is not None:
                yield raw
        self._report_summaries(stats, len(other_images - kept_images), seen_mids)

    def _record(self, iid: str, boxes: list[_Box]) -> RawRecord | None:
        path = self.images_dir / f"{iid}{IMAGE_EXT}"
        where = f"{self.source}:{boxes[0].line}"
        if not os.path.isfile(path):
            self.problems.add(
                self.source,
                "image_missing",
                f"image {path.name} for ImageID {iid} not found in {self.images_dir}; pass the image folder with --images",
                "skipped image",
                line=boxes[0].line,
                field="ImageID",
                fatal=True,
            )
            return None
        info = self.probe_image(path, where)
        if info is None:
            return None
        names = [self._name(b.mid) for b in boxes]
        return RawRecord(
            id=iid,
            path=path,
            boxes=[
                norm_xxyy_to_xyxy(b.xmin, b.xmax, b.ymin, b.ymax, info.width, info.height)
                for b in boxes
            ],
            labels=names,
            meta={
                "mids": {self._name(b.mid): b.mid for b in boxes},
                "box_meta": [dict(b.flags) for b in boxes],
            },
            info=info,
            where=where,
        )

    def _name(self, mid: str) -> str:
        if self.wanted is not None:
            return self.wanted[mid]
        return self.names.get(mid, mid)

    def _report_summaries(
        self, stats: dict[str, int], other_images: int, seen_mids: set[str]
    ) -> None:
        if stats["class_rows"]:
            self.problems.add(
                self.source,
                "class_filtered",
                f"{stats['class_rows']} rows of other classes ({other_images} images with none of "
                f"{', '.join(self.wanted.values()) if self.wanted else ''})",
                "left out (not in --classes)",
            )
        if stats["low_conf_rows"]:
            self.problems.add(
                self.source,
                "low_confidence",
                f"{stats['low_conf_rows']} rows with Confidence below {self.options.min_confidence}",
                "ignored (below --min-confidence)",
                field="Confidence",
            )
        for mid, name in (self.wanted or {}).items():
            if mid not in seen_mids:
                self.problems.add(
                    self.source,
                    "class_absent",
                    f"no usable box of class {name!r} ({mid})",
                    "kept the class (no examples)",
                )
