"""``coco``: COCO instances JSON, one file per split.

Layout::

    OUT/annotations/instances_train.json   (instances_val.json, instances_test.json;
                                            instances.json when the dataset has no split,
                                            instances_unassigned.json for records without
                                            a split when others have one)
    OUT/images/<file>                      only with --copy

``file_name`` is the record's path relative to the image root: OUT/images with
``--copy``, else the dataset's own image root (import back with ``--images`` naming it).
Category ids are 1..N in class order; ``bbox`` is ``[x, y, w, h]``, ``area`` is
``w * h``, ``iscrowd`` (and any other per-box flag such as ``difficult``) comes from
``meta["box_meta"]``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from cvpipe.data import boxes as B
from cvpipe.data.exporters.base import EXPORTERS, Exporter, export_relpaths, tracked
from cvpipe.data.manifest import Record, Task
from cvpipe.io import write_json

log = logging.getLogger(__name__)


@EXPORTERS.register("coco")
class CocoExporter(Exporter):
    """Writes detect datasets as COCO instances JSON."""

    tasks: ClassVar[tuple[Task, ...]] = ("detect",)

    def write(self) -> None:
        groups = self.by_split()
        has_split = any(s is not None for s, _ in groups)
        categories = [
            {"id": i + 1, "name": c, "supercategory": "none"}
            for i, c in enumerate(self.dataset.classes)
        ]
        files = export_relpaths(self.dataset.records) if self.copy_images else None
        for split, records in groups:
            name = (
                f"instances_{split}"
                if split is not None
                else ("instances_unassigned" if has_split else "instances")
            )
            doc = self._document(records, categories, files, split)
            write_json(self.out / "annotations" / f"{name}.json", doc, indent=None)
        if not self.copy_images:
            log.debug(
                "images stay in %s; import back with --images %s",
                self.dataset.image_root.resolve(),
                self.dataset.image_root.resolve(),
            )

    def _document(
        self,
        records: list[Record],
        categories: list[dict[str, Any]],
        files: dict[str, Any] | None,
        split: str | None,
    ) -> dict[str, Any]:
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for image_id, rec in enumerate(tracked(records, f"coco {split or 'all'}"), start=1):
            file_name = rec.file
            if files is not None:
                file_name = files[rec.id].as_posix()
                self.place_image(rec, self.out / "images" / files[rec.id])
            images.append(
                {"id": image_id, "file_name": file_name, "width": rec.width, "height": rec.height}
            )
            box_meta = rec.meta.get("box_meta") or [{} for _ in rec.boxes or []]
            for box, label, flags in zip(rec.boxes or [], rec.labels or [], box_meta, strict=True):
                xywh = [round(v, 3) for v in B.xyxy_to_xywh(box)]
                ann: dict[str, Any] = {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": xywh,
                    "area": round(xywh[2] * xywh[3], 3),
                    "iscrowd": int(flags.get("iscrowd", 0)),
                }
                ann.update({k: v for k, v in flags.items() if k != "iscrowd"})
                annotations.append(ann)
        return {
            "info": {"description": f"{self.dataset.info.name} (exported by cvpipe)"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
