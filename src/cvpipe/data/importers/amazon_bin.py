"""``amazon-bin``: the Amazon Bin Image Dataset (one metadata JSON per bin image).

Each metadata file describes one bin::

    {"BIN_FCSKU_DATA": {"B000A8C5QE": {"asin": "B000A8C5QE", "name": "...", "quantity": 1,
                                       "height": {"unit": "IN", "value": 4.2}, ...}, ...},
     "EXPECTED_QUANTITY": 2, "image_fname": "523.jpg"}

``EXPECTED_QUANTITY`` (the number of items in the bin) is the label. It and
``image_fname`` are read at the top level (real files) or inside ``BIN_FCSKU_DATA``
(as some copies of the dataset, and the seed-001 report, show them).

SOURCE is one of:

- a folder of metadata files (``abid/metadata/``; a folder holding ``metadata/`` works too);
- a ``file_list.json`` mapping count → metadata paths (``{"1": ["metadata/100313.json",
  ...]}``, the subset of seeds 001/002). Entries are resolved relative to the list's
  folder, then by file name inside a ``metadata/`` folder next to the list or next to
  ``--images``. An entry whose metadata file is absent but whose image exists is
  imported with the count it is listed under (reported once, as ``metadata_missing``);
- a single metadata file.

Images are looked up in ``--images`` (default: a ``bin-images/`` folder next to the
metadata folder, else the metadata folder itself) by ``image_fname``, then by
``<metadata stem>.jpg``. Bins whose count lies outside ``--counts`` (default ``1-5``;
``0-5`` keeps empty bins) are left out and counted in one ``count_filtered`` entry.

Task ``count`` (default; classes ``"1"``..``"5"``) or ``classify`` (label ``str(count)``).
Each record's ``meta`` keeps ``expected_quantity``, the flattened ``items`` and the
``metadata`` file path. Files are read one at a time, in natural order of their names.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cvpipe.data.importers.base import IMPORTERS, Importer, ImportOptions, RawRecord
from cvpipe.data.manifest import Task
from cvpipe.data.problems import ProblemLog
from cvpipe.errors import ConfigError, DatasetError, DatasetFormatError

log = logging.getLogger(__name__)

ITEMS_KEY = "BIN_FCSKU_DATA"
QUANTITY_KEY = "EXPECTED_QUANTITY"
FNAME_KEY = "image_fname"
DIMENSIONS = ("height", "length", "width", "weight")
IMAGES_FOLDER = "bin-images"
METADATA_FOLDER = "metadata"
_MISSING = object()


@dataclass(slots=True)
class _Entry:
    """One bin to read: its metadata file (None when not found) and what a file list said."""

    id: str
    path: Path | None
    listed_count: int | None = None
    listed_as: str | None = None  # the raw file_list entry, for messages


def as_count(value: Any) -> int | None:
    """``value`` as a non-negative integer count, or None (``2.0`` counts, ``"2"`` does not).

    Example:
        >>> as_count(2), as_count(2.0), as_count(2.5), as_count("2"), as_count(True)
        (2, 2, None, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _natural_key(name: str) -> tuple[int, int, str]:
    stem = name.rsplit(".", 1)[0]
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


@IMPORTERS.register("amazon-bin")
class AmazonBinImporter(Importer):
    """Import Amazon Bin Image Dataset metadata as a counting (or classification) dataset.

    Args:
        source: metadata folder, ``file_list.json`` or one metadata file.
        options: ``counts``, ``images`` and ``task`` are used; ``classes`` is refused.
        problems: where problems are recorded.

    Raises:
        ConfigError: ``--classes`` given (select bins with ``--counts``), bad ``--counts``.
        DatasetError: ``--images`` folder missing, no metadata found.
        DatasetFormatError: ``file_list.json`` unreadable or of the wrong shape.
    """

    default_task: ClassVar[Task] = "count"
    tasks: ClassVar[tuple[Task, ...]] = ("count", "classify")

    def __init__(self, source: Path, options: ImportOptions, problems: ProblemLog) -> None:
        super().__init__(source, options, problems)
        if options.classes:
            raise ConfigError(
                "amazon-bin selects bins by item count: use --counts (e.g. --counts 1-5) instead of --classes"
            )
        self.lo, self.hi = options.count_range()
        self._file_list: dict[str, Any] | None = None
        self._single: Path | None = None
        if self.source.is_dir():
            self.meta_dir = self._metadata_folder(self.source)
            self.list_dir = self.meta_dir
        else:
            self.list_dir = self.source.parent
            data = self._load_source_json()
            if isinstance(data, dict) and (ITEMS_KEY in data or QUANTITY_KEY in data):
                self._single = self.source
                self.meta_dir = self.source.parent
            else:
                self._file_list = self._check_file_list(data)
                found = self.list_dir / METADATA_FOLDER
                self.meta_dir = found if found.is_dir() else self.list_dir
        self.images_dir = self._images_folder()
        self.filtered: Counter[int] = Counter()

    # -- locating files -------------------------------------------------------------------
    @staticmethod
    def _metadata_folder(folder: Path) -> Path:
        sub = folder / METADATA_FOLDER
        if sub.is_dir():  # the dataset root (it may also hold file_list.json)
            return sub
        with os.scandir(folder) as it:
            if any(e.name.endswith(".json") and e.is_file() for e in it):
                return folder
        raise DatasetError(
            f"{folder}: no metadata JSON files found (expected e.g. {folder}/523.json, a "
            f"{METADATA_FOLDER}/ folder, or a file_list.json)"
        )

    def _images_folder(self) -> Path:
        if self.options.images:
            images = Path(self.options.images)
            if not images.is_dir():
                raise DatasetError(f"{images}: --images folder not found")
            return images.absolute()
        for cand in (
            self.meta_dir.parent / IMAGES_FOLDER,
            self.list_dir / IMAGES_FOLDER,
            self.meta_dir / IMAGES_FOLDER,
        ):
            if cand.is_dir():
                return cand.absolute()
        return self.meta_dir.absolute()

    def image_root(self) -> Path:
        return self.images_dir

    def _load_source_json(self) -> Any:
        try:
            with open(self.source, "rb") as f:
                return json.load(f)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(
                f"invalid JSON: {exc.msg} (column {exc.colno}); expected a file_list.json or a bin metadata file",
                path=self.source,
                line=exc.lineno,
            ) from None
        except (UnicodeDecodeError, OSError) as exc:
            raise DatasetFormatError(f"cannot read: {exc}", path=self.source) from None

    def _check_file_list(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise DatasetFormatError(
                'not a file list: expected {"<count>": ["metadata/<id>.json", ...], ...} '
                f"or a bin metadata file with {ITEMS_KEY}",
                path=self.source,
            )
        return data

    def _entries(self) -> Iterator[_Entry]:
        if self._single is not None:
            yield _Entry(self._single.stem, self._single)
        elif self._file_list is not None:
            yield from self._list_entries(self._file_list)
        else:
            with os.scandir(self.meta_dir) as it:
                names = [
                    e.name
                    for e in it
                    if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file()
                ]
            names.sort(key=_natural_key)
            for name in names:
                yield _Entry(name[:-5], self.meta_dir / name)

    def _list_entries(self, file_list: dict[str, Any]) -> Iterator[_Entry]:
        search = [self.meta_dir, self.list_dir / METADATA_FOLDER]
        if self.options.images:
            search.append(Path(self.options.images).parent / METADATA_FOLDER)
        search_dirs = list(dict.fromkeys(d for d in search if d.is_dir()))
        for key in sorted(file_list, key=_natural_key):
            listed = as_count(int(key)) if re.fullmatch(r"\d+", key.strip()) else None
            if listed is None:
                self.problems.add(
                    self.source,
                    "bad_file_list",
                    f"key {key!r} is not an item count",
                    "left out its entries",
                    field=key,
                    fatal=True,
                )
                continue
            for i, entry in enumerate(file_list[key]):
                if not isinstance(entry, (str, int)) or isinstance(entry, bool):
                    self.problems.add(
                        self.source,
                        "bad_file_list",
                        f"entry {entry!r} is not a path",
                        "left out",
                        field=f"{key}[{i}]",
                        fatal=True,
                    )
                    continue
                if not self.lo <= listed <= self.hi:
                    self.filtered[listed] += 1
                    continue
                text = str(entry).strip().replace("\\", "/")
                name = text.rsplit("/", 1)[-1]
                if not name.endswith(".json"):
                    name += ".json"
                    text += ".json"
                cands = [self.list_dir / text] + [d / name for d in search_dirs]
                path = next((c for c in cands if os.path.isfile(c)), None)
                yield _Entry(name[:-5], path, listed, f"{key}[{i}] {entry!r}")

    def _find_image(self, names: list[str]) -> Path | None:
        root = str(self.images_dir)
        for name in dict.fromkeys(names):
            cands = (
                [name, name.replace("\\", "/").rsplit("/", 1)[-1]]
                if "/" in name or "\\" in name
                else [name]
            )
            for cand in cands:
                full = os.path.join(root, cand)
                if os.path.isfile(full):
                    return Path(full)
        return None

    # -- records --------------------------------------------------------------------------
    def records(self) -> Iterator[RawRecord]:
        seen: set[str] = set()
        unlisted: list[str] = []
        for entry in self._entries():
            if entry.id in seen:
                self.problems.add(
                    entry.path or self.source,
                    "duplicate",
                    f"bin {entry.id!r} listed more than once",
                    "left out the repeat",
                    field=entry.listed_as,
                )
                continue
            seen.add(entry.id)
            if entry.path is not None:
                raw = self._from_metadata(entry, entry.path)
            else:
                raw = self._from_listing(entry, entry.listed_count or 0, unlisted)
            if raw is not None:
                yield raw
        self._report_summaries(unlisted)

    def _from_listing(self, entry: _Entry, listed: int, unlisted: list[str]) -> RawRecord | None:
        """A file_list entry without its metadata JSON: the listed count and the image by id."""
        image = self._find_image([f"{entry.id}.jpg"])
        if image is None:
            self.problems.add(
                self.source,
                "metadata_missing",
                f"entry {entry.listed_as}: metadata file {entry.id}.json not found (looked next to the list and in "
                f"{self.meta_dir}) and no image {entry.id}.jpg in {self.images_dir}",
                "left out",
                field=entry.listed_as,
                fatal=True,
            )
            return None
        unlisted.append(entry.id)
        return self._record(
            entry.id, image, listed, {"expected_quantity": listed}, str(self.source)
        )

    def _from_metadata(self, entry: _Entry, path: Path) -> RawRecord | None:
        data = self._read_json(path)
        if data is None:
            return None
        items_obj = data.get(ITEMS_KEY, {})
        if not isinstance(items_obj, dict):
            self.problems.add(
                path,
                "bad_metadata",
                f"{ITEMS_KEY} is not an object",
                "skipped bin",
                field=ITEMS_KEY,
                fatal=True,
            )
            return None
        count = self._quantity(path, data, items_obj)
        if count is None:
            return None
        if entry.listed_count is not None and entry.listed_count != count:
            self.problems.add(
                path,
                "count_mismatch",
                f"{QUANTITY_KEY} is {count} but {self.source.name} lists this bin under {entry.listed_count!r}",
                f"used {QUANTITY_KEY}",
                field=QUANTITY_KEY,
            )
        if not self.lo <= count <= self.hi:
            self.filtered[count] += 1
            return None
        fname = data.get(FNAME_KEY, items_obj.get(FNAME_KEY))
        names = ([fname] if isinstance(fname, str) and fname.strip() else []) + [f"{entry.id}.jpg"]
        image = self._find_image(names)
        if image is None:
            self.problems.add(
                path,
                "image_missing",
                f"image {names[0]!r} not found in {self.images_dir}"
                + (f" (also tried {names[-1]!r})" if len(names) > 1 else "")
                + "; pass the bin-images folder with --images",
                "skipped bin",
                field=FNAME_KEY,
                fatal=True,
            )
            return None
        meta = {
            "expected_quantity": count,
            "items": self._items(path, items_obj, count),
            "metadata": self._relative(path),
        }
        return self._record(entry.id, image, count, meta, str(path))

    def _record(
        self, id: str, image: Path, count: int, meta: dict[str, Any], where: str
    ) -> RawRecord:
        return RawRecord(
            id=id,
            path=image,
            **self.spec.label_fields(str(count)),
            meta=meta,
            where=where,
        )

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as f:
                data = json.load(f)
        except json.JSONDecodeError as exc:
            self.problems.add(
                path,
                "bad_json",
                f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                "skipped bin",
                line=exc.lineno,
                fatal=True,
            )
            return None
        except (UnicodeDecodeError, OSError) as exc:
            self.problems.add(
                path, "unreadable", f"cannot read metadata: {exc}", "skipped bin", fatal=True
            )
            return None
        if not isinstance(data, dict):
            self.problems.add(
                path,
                "bad_metadata",
                f"expected a JSON object with {ITEMS_KEY} and {QUANTITY_KEY}, found {type(data).__name__}",
                "skipped bin",
                fatal=True,
            )
            return None
        return data

    def _quantity(self, path: Path, data: dict[str, Any], items_obj: dict[str, Any]) -> int | None:
        raw = data.get(QUANTITY_KEY, items_obj.get(QUANTITY_KEY, _MISSING))
        if raw is _MISSING:
            self.problems.add(
                path,
                "missing_quantity",
                f"no {QUANTITY_KEY} (the number of items in the bin) at the top level or in {ITEMS_KEY}",
                "skipped bin",
                field=QUANTITY_KEY,
                fatal=True,
            )
            return None
        count = as_count(raw)
        if count is None:
            self.problems.add(
                path,
                "bad_quantity",
                f"{QUANTITY_KEY} {raw!r} is not a non-negative integer",
                "skipped bin",
                field=QUANTITY_KEY,
                fatal=True,
            )
        return count

    def _items(self, path: Path, items_obj: dict[str, Any], count: int) -> list[dict[str, Any]]:
        """Flatten the bin's items; report bad item quantities and a sum that differs from the count."""
        items: list[dict[str, Any]] = []
        total: int | None = 0
        for asin, obj in items_obj.items():
            if asin in (QUANTITY_KEY, FNAME_KEY):
                continue
            if not isinstance(obj, dict):
                self.problems.add(
                    path,
                    "bad_item",
                    f"item {asin!r} is not an object",
                    "left the item out of meta",
                    field=f"{ITEMS_KEY}.{asin}",
                )
                total = None
                continue
            qty = as_count(obj.get("quantity"))
            if qty is None:
                self.problems.add(
                    path,
                    "bad_item_quantity",
                    f"item {asin!r} quantity {obj.get('quantity')!r} is not a non-negative integer",
                    "kept the bin; item quantity left empty",
                    field=f"{ITEMS_KEY}.{asin}.quantity",
                )
                total = None
            elif total is not None:
                total += qty
            item: dict[str, Any] = {
                "asin": obj.get("asin", asin),
                "name": obj.get("name"),
                "quantity": qty,
            }
            for dim in DIMENSIONS:
                value = obj.get(dim)
                if isinstance(value, dict):
                    item[dim] = value.get("value")
                    item[f"{dim}_unit"] = value.get("unit")
                elif value is not None:
                    item[dim] = value
            items.append(item)
        if total is not None and total != count:
            self.problems.add(
                path,
                "quantity_mismatch",
                f"item quantities sum to {total} but {QUANTITY_KEY} is {count}",
                f"kept {QUANTITY_KEY}",
                field=QUANTITY_KEY,
            )
        return items

    def _relative(self, path: Path) -> str:
        text, prefix = str(path), str(self.list_dir) + os.sep
        return text[len(prefix) :].replace(os.sep, "/") if text.startswith(prefix) else text

    def _report_summaries(self, unlisted: list[str]) -> None:
        if self.filtered:
            n = sum(self.filtered.values())
            detail = ", ".join(f"{c}: {k}" for c, k in sorted(self.filtered.items()))
            self.problems.add(
                self.source,
                "count_filtered",
                f"{n} bins with a count outside --counts {self.options.counts} (count: bins = {detail})",
                "left out (outside --counts)",
            )
        if unlisted:
            first = ", ".join(unlisted[:3]) + (", ..." if len(unlisted) > 3 else "")
            self.problems.add(
                self.source,
                "metadata_missing",
                f"{len(unlisted)} listed bins have no metadata JSON ({first}); items unknown",
                "imported with the count they are listed under",
            )
        log.debug("amazon-bin: %d bins filtered by --counts", sum(self.filtered.values()))

    def class_order(self) -> list[str] | None:
        return [str(c) for c in range(self.lo, self.hi + 1)]
