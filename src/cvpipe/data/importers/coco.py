"""``coco``: COCO object-detection JSON (``images``, ``annotations``, ``categories``).

SOURCE is an instances JSON file, or a folder holding several (directly or in
``annotations/``), e.g. ``instances_train2017.json`` + ``instances_val2017.json``; with a
folder, the split comes from each file name (``train``/``val``/``valid``/``test``).

Images are looked up under ``--images``; by default under the JSON's folder, or an
``images`` folder next to it or next to its parent (``annotations/../images``), whichever
holds the first image. ``file_name`` is relative to that folder.

- ``bbox`` ``[x, y, w, h]`` → xyxy; ``iscrowd`` (and ``difficult``/``truncated``/
  ``occluded`` when present) are kept per box in ``meta["box_meta"]``; ``segmentation``
  is ignored.
- Category ids need not be contiguous: classes are the category names ordered by id.
- Images without annotations are kept as negatives (``boxes: []``).
- Annotations naming an unknown image or category, and missing keys, are reported with
  the field (``annotations[12].bbox``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from cvpipe.data import boxes as B
from cvpipe.data.importers.base import IMPORTERS, Importer, ImportOptions, RawRecord
from cvpipe.data.importers.imagefolder import SPLIT_ALIASES
from cvpipe.data.manifest import Task
from cvpipe.data.problems import ProblemLog
from cvpipe.errors import ConfigError, DatasetError

BOX_FLAGS = ("difficult", "truncated", "occluded")


class _Doc:
    """One loaded annotation file."""

    def __init__(self, path: Path, split: str | None, data: dict[str, Any]) -> None:
        self.path = path
        self.split = split
        self.data = data


@IMPORTERS.register("coco")
class CocoImporter(Importer):
    """COCO instances JSON importer (task ``detect``)."""

    default_task: ClassVar[Task] = "detect"
    tasks: ClassVar[tuple[Task, ...]] = ("detect",)

    def __init__(self, source: Path, options: ImportOptions, problems: ProblemLog) -> None:
        super().__init__(source, options, problems)
        self.categories: dict[int, str] = {}
        self.docs = [d for d in (self._load(p, s) for p, s in self._files()) if d is not None]
        if options.classes:
            missing = [c for c in options.classes if c not in self.categories.values()]
            if missing:
                raise ConfigError(
                    f"--classes {missing} are not categories of {self.source}; "
                    f"valid: {', '.join(self.class_names())}"
                )
        self._root = self._find_root()

    # -- files --------------------------------------------------------------------------
    def _files(self) -> list[tuple[Path, str | None]]:
        if self.source.is_file():
            return [(self.source, None)]
        found = sorted(
            p
            for d in (self.source, self.source / "annotations")
            if d.is_dir()
            for p in d.glob("*.json")
        )
        if not found:
            raise DatasetError(
                f"{self.source}: no COCO .json files found (looked in the folder and its annotations/)"
            )
        return [(p, _split_of(p)) for p in found]

    def _load(self, path: Path, split: str | None) -> _Doc | None:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as exc:
            self.problems.add(
                path,
                "json_invalid",
                f"invalid JSON: {exc.msg} (column {exc.colno})",
                "skipped file",
                line=exc.lineno,
                fatal=True,
            )
            return None
        except UnicodeDecodeError as exc:
            self.problems.add(
                path, "json_invalid", f"not UTF-8 text: {exc.reason}", "skipped file", fatal=True
            )
            return None
        if not isinstance(data, dict):
            self.problems.add(
                path,
                "not_coco",
                "top level is not a JSON object with images/annotations/categories",
                "skipped file",
                fatal=True,
            )
            return None
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                what = "missing" if key not in data else f"not a list ({type(data[key]).__name__})"
                self.problems.add(
                    path,
                    "missing_field",
                    f"{key!r} is {what}; a COCO instances file needs images, annotations and categories",
                    "skipped file",
                    field=key,
                    fatal=True,
                )
                return None
        if not self._categories(path, data["categories"]):
            return None
        return _Doc(path, split, data)

    def _categories(self, path: Path, cats: list[Any]) -> bool:
        for i, c in enumerate(cats):
            cid, name = _get(c, "id"), _get(c, "name")
            if not isinstance(cid, int) or not isinstance(name, str) or not name.strip():
                bad = "id" if not isinstance(cid, int) else "name"
                self.problems.add(
                    path,
                    "missing_field",
                    f"category {i} has no valid {bad!r}",
                    "skipped file",
                    field=f"categories[{i}].{bad}",
                    fatal=True,
                )
                return False
            name = name.strip()
            known = self.categories.get(cid)
            if known is not None and known != name:
                self.problems.add(
                    path,
                    "category_conflict",
                    f"category id {cid} is {name!r} here but {known!r} in an earlier file",
                    "skipped file",
                    field=f"categories[{i}]",
                    fatal=True,
                )
                return False
            if known is None and name in self.categories.values():
                self.problems.add(
                    path,
                    "duplicate_category",
                    f"category name {name!r} has several ids",
                    "merged into one class",
                    field=f"categories[{i}]",
                )
            self.categories[cid] = name
        return True

    def _find_root(self) -> Path:
        if self.options.images:
            root = Path(self.options.images)
            if not root.is_dir():
                raise DatasetError(f"{root}: --images folder not found")
            return root
        json_dir = (
            self.docs[0].path.parent
            if self.docs
            else (self.source if self.source.is_dir() else self.source.parent)
        )
        candidates = [json_dir, json_dir / "images", json_dir.parent / "images"]
        first = next(
            (
                im.get("file_name")
                for d in self.docs
                for im in d.data["images"]
                if isinstance(im, dict)
            ),
            None,
        )
        if isinstance(first, str):
            for c in candidates:
                if (c / first).is_file():
                    return c
        return json_dir

    def image_root(self) -> Path:
        return self._root

    # -- records ------------------------------------------------------------------------
    def records(self) -> Iterator[RawRecord]:
        seen_ids: set[str] = set()
        for doc in self.docs:
            images = self._images(doc)
            anns = self._annotations(doc, images)
            for image_id, im in images.items():
                rec = self._record(doc, im, anns.get(image_id, []), seen_ids)
                if rec is not None:
                    yield rec

    def _images(self, doc: _Doc) -> dict[int, tuple[int, dict[str, Any]]]:
        out: dict[int, tuple[int, dict[str, Any]]] = {}
        for i, im in enumerate(doc.data["images"]):
            iid, fname = _get(im, "id"), _get(im, "file_name")
            if not isinstance(iid, int) or isinstance(iid, bool):
                self.problems.add(
                    doc.path,
                    "missing_field",
                    f"image {i} has no integer 'id'",
                    "skipped image",
                    field=f"images[{i}].id",
                    fatal=True,
                )
                continue
            if not isinstance(fname, str) or not fname.strip():
                self.problems.add(
                    doc.path,
                    "missing_field",
                    f"image {i} (id {iid}) has no 'file_name'",
                    "skipped image",
                    field=f"images[{i}].file_name",
                    fatal=True,
                )
                continue
            if iid in out:
                self.problems.add(
                    doc.path,
                    "duplicate_image",
                    f"image id {iid} appears twice",
                    "kept the first",
                    field=f"images[{i}].id",
                    fatal=True,
                )
                continue
            out[iid] = (i, im)
        return out

    def _annotations(
        self, doc: _Doc, images: dict[int, Any]
    ) -> dict[int, list[tuple[list[float], str, dict[str, int]]]]:
        """One pass over the annotations, indexed by image id."""
        by_image: dict[int, list[tuple[list[float], str, dict[str, int]]]] = defaultdict(list)
        left_out: Counter[str] = Counter()
        wanted = set(self.options.classes or [])
        for j, a in enumerate(doc.data["annotations"]):
            where = f"annotations[{j}]"
            missing = [k for k in ("image_id", "category_id", "bbox") if _get(a, k) is None]
            if missing:
                self.problems.add(
                    doc.path,
                    "missing_field",
                    f"annotation {j} has no {missing[0]!r}",
                    "skipped annotation",
                    field=f"{where}.{missing[0]}",
                    fatal=True,
                )
                continue
            iid, cid, bbox = a["image_id"], a["category_id"], a["bbox"]
            if iid not in images:
                self.problems.add(
                    doc.path,
                    "unknown_image_id",
                    f"annotation {j} refers to image_id {iid!r}, which is not in 'images'",
                    "skipped annotation",
                    field=f"{where}.image_id",
                    fatal=True,
                )
                continue
            if cid not in self.categories:
                self.problems.add(
                    doc.path,
                    "unknown_category_id",
                    f"annotation {j} refers to category_id {cid!r}, which is not in 'categories'",
                    "skipped annotation",
                    field=f"{where}.category_id",
                    fatal=True,
                )
                continue
            name = self.categories[cid]
            if wanted and name not in wanted:
                left_out[name] += 1
                continue
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
                self.problems.add(
                    doc.path,
                    "bad_value",
                    f"annotation {j} bbox is {bbox!r}, expected [x, y, width, height]",
                    "skipped annotation",
                    field=f"{where}.bbox",
                    fatal=True,
                )
                continue
            flags = {"iscrowd": _flag(a.get("iscrowd"))}
            flags.update({k: _flag(a[k]) for k in BOX_FLAGS if k in a})
            by_image[iid].append((B.xywh_to_xyxy(bbox), name, flags))
        for name, n in sorted(left_out.items()):
            self.problems.add(
                doc.path,
                "class_not_selected",
                f"{n} annotations of class {name!r} (not in --classes)",
                "left out",
                field="annotations",
            )
        return by_image

    def _record(
        self,
        doc: _Doc,
        entry: tuple[int, dict[str, Any]],
        anns: list[tuple[list[float], str, dict[str, int]]],
        seen_ids: set[str],
    ) -> RawRecord | None:
        i, im = entry
        fname = im["file_name"].strip()
        path = self._root / fname
        rec_id = PurePosixPath(fname.replace("\\", "/")).with_suffix("").as_posix()
        if rec_id in seen_ids:
            self.problems.add(
                doc.path,
                "duplicate_image",
                f"file_name {fname!r} already imported from another entry",
                "skipped image",
                field=f"images[{i}].file_name",
                fatal=True,
            )
            return None
        info = self.probe_image(path, doc.path)
        if info is None:
            return None
        seen_ids.add(rec_id)
        w, h = _get(im, "width"), _get(im, "height")
        if (w, h) != (info.width, info.height):
            said = f"{w}x{h}" if w is not None and h is not None else "missing"
            self.problems.add(
                doc.path,
                "size_mismatch",
                f"image {fname!r}: width x height is {said} but the image is {info.width}x{info.height}",
                f"used real size {info.width}x{info.height}",
                field=f"images[{i}].width",
            )
        meta: dict[str, Any] = {"coco_id": im["id"]}
        if anns:
            meta["box_meta"] = [flags for _, _, flags in anns]
        return RawRecord(
            id=rec_id,
            path=path,
            split=doc.split,
            boxes=[b for b, _, _ in anns],
            labels=[n for _, n, _ in anns],
            meta=meta,
            info=info,
            where=str(doc.path),
        )

    # -- classes ------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        """Category names ordered by category id (duplicates merged)."""
        return list(dict.fromkeys(self.categories[c] for c in sorted(self.categories)))

    def class_order(self) -> list[str] | None:
        if self.options.classes:
            return list(self.options.classes)
        return self.class_names()


def _split_of(path: Path) -> str | None:
    for token in re.split(r"[_\-.\s]+", path.stem.lower()):
        token = token.rstrip("0123456789")
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return None


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _flag(v: Any) -> int:
    return 1 if v in (1, True, "1") else 0
