"""The record checks of one ``cvpipe validate`` pass, and the findings they produce.

:class:`ValidationPass` holds the state of one run: every :class:`Finding`, the records
the ``skip`` policy leaves out (with reasons) and counters for the summary. Its checks
cover manifest ids, labels against the class list, each image's decode result
(:class:`~cvpipe.data.image_checks.ImageCheck`) against the manifest, detect boxes
against the real image size, and content duplicates / split leaks. The kinds and
severities are listed in :mod:`cvpipe.data.validate`.

Example:
    >>> vp = ValidationPass(ds, "report")  # doctest: +SKIP
    >>> vp.check_ids(); [p.kind for p in vp.problems]  # doctest: +SKIP
    ['duplicate_id']
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Literal

import cvpipe.orientation as O
from cvpipe.data import boxes as B
from cvpipe.data.duplicates import group_by_digest
from cvpipe.data.image_checks import ImageCheck
from cvpipe.data.manifest import MANIFEST, Dataset, Record
from cvpipe.data.problems import Problem
from cvpipe.errors import CvpipeError
from cvpipe.images import ImageInfo
from cvpipe.tasks.registry import get_task

Severity = Literal["error", "warning", "info"]


@dataclass(slots=True)
class Finding(Problem):
    """A :class:`~cvpipe.data.problems.Problem` with a severity and the record it concerns.

    Attributes:
        severity: ``error`` (the record is wrong as it stands), ``warning`` (usable but
            probably unintended) or ``info``.
        id: the manifest record id.
        ref: the other file involved (the first copy of a duplicate group).
    """

    severity: Severity = "error"
    id: str | None = None
    ref: str | None = None


class ValidationPass:
    """State of one validation run: the findings and, for ``skip``, the cleaned records."""

    def __init__(self, ds: Dataset, policy: str) -> None:
        self.ds = ds
        self.task = get_task(ds.task)
        self.skip = policy == "skip"
        self.problems: list[Finding] = []
        self.drop: dict[int, list[str]] = defaultdict(list)  # record index → reasons
        self.stats: Counter[str] = Counter()

    def add(
        self,
        rec: Record | None,
        kind: str,
        severity: Severity,
        message: str,
        action: str,
        **kw: Any,
    ) -> None:
        file = kw.pop("file", None) or (str(self.ds.image_path(rec)) if rec is not None else "")
        self.problems.append(
            Finding(
                file=file,
                kind=kind,
                message=message,
                action=action,
                severity=severity,
                id=rec.id if rec is not None else None,
                **kw,
            )
        )

    def act(self, skip_action: str) -> str:
        """The action text: what was done under skip, what skip would do otherwise."""
        return skip_action if self.skip else f"none (--on-error skip: {skip_action})"

    def leave_out(self, i: int, kind: str) -> None:
        self.drop[i].append(kind)

    # -- manifest-level checks ------------------------------------------------------
    def check_ids(self) -> None:
        first: dict[str, int] = {}
        manifest = str(self.ds.root / MANIFEST)
        for i, rec in enumerate(self.ds.records):
            if rec.id in first:
                self.add(
                    rec,
                    "duplicate_id",
                    "error",
                    f"id {rec.id!r} already used on line {first[rec.id] + 1}",
                    self.act("left out this record"),
                    file=manifest,
                    line=i + 1,
                    field="id",
                )
                self.leave_out(i, "duplicate_id")
            else:
                first[rec.id] = i

    def check_label(self, i: int, rec: Record) -> None:
        """An image's class (a classify label, a count) that is not one of the classes
        leaves the image out. Objects are checked one by one with the image size
        (:meth:`check_boxes`, through :meth:`~cvpipe.tasks.base.Task.check_record`)."""
        if not self.task.one_class_per_image:
            return
        problem = self.task.label_error(rec, self.ds.classes)
        if problem is None:
            return
        where, message = problem
        self.add(
            rec, "label_out_of_range", "error", message, self.act("left out the image"), field=where
        )
        self.leave_out(i, "label_out_of_range")

    # -- image-level checks -----------------------------------------------------------
    def check_image_result(self, i: int, rec: Record, res: ImageCheck) -> bool:
        """Record decode problems; returns False when the image is unusable."""
        if res.error_kind is not None:
            self.add(
                rec,
                f"image_{res.error_kind}",
                "error",
                res.error_message or res.error_kind,
                self.act("left out the image"),
            )
            self.leave_out(i, f"image_{res.error_kind}")
            return False
        path = self.ds.image_path(rec)
        if ImageInfo(
            res.width or 0, res.height or 0, res.format or "", res.mode or ""
        ).ext_mismatch(path):
            self.add(
                rec,
                "extension_mismatch",
                "warning",
                f"file is {res.format} but named {path.suffix}",
                "kept; decoded by content",
            )
        self.check_orientation(rec, res.orientation)
        if (res.width, res.height) != (rec.width, rec.height):
            # labels in pixels (objects) no longer fit a wrong size; an image's class still does
            sev: Severity = "warning" if self.task.one_class_per_image else "error"
            self.add(
                rec,
                "size_mismatch",
                sev,
                f"manifest says {rec.width}x{rec.height}, the image is {res.width}x{res.height}",
                self.act(f"manifest size corrected to {res.width}x{res.height}"),
                field="width,height",
            )
            self.stats["sizes_corrected"] += 1
        return True

    def check_orientation(self, rec: Record, tag: int | None) -> None:
        """The file's EXIF orientation against what the record applies."""
        if tag is None or tag == 1 or (rec.orientation is not None and tag == rec.orientation):
            return
        if not O.is_valid(tag):
            self.add(
                rec,
                "exif_orientation_invalid",
                "warning",
                f"EXIF orientation is {tag}: not a valid value (1-8), so no viewer turns this photo",
                "kept as stored",
                field="exif.Orientation",
            )
        elif rec.orientation is None:
            self.add(
                rec,
                "exif_orientation",
                "warning",
                f"EXIF orientation is {tag}: viewers rotate this photo, cvpipe uses the stored pixels as they are",
                "kept as stored (re-import with --exif apply to use the photo as viewers show it)",
            )
        else:
            self.add(
                rec,
                "exif_orientation_changed",
                "warning",
                f"the manifest applies EXIF orientation {rec.orientation} but the file now says {tag}",
                f"decoded with orientation {rec.orientation} (re-import if the file was edited)",
                field="meta.exif_orientation",
            )

    def check_boxes(self, i: int, rec: Record, width: int, height: int) -> Record:
        """Check a detect record's boxes against the real size; returns the cleaned record."""
        boxes, labels = list(rec.boxes or []), list(rec.labels or [])
        box_meta = rec.meta.get("box_meta")
        if len(boxes) != len(labels):
            self.add(
                rec,
                "box_label_mismatch",
                "error",
                f"{len(boxes)} boxes but {len(labels)} labels",
                self.act(f"kept the first {min(len(boxes), len(labels))} box/label pairs"),
                field="labels",
            )
        keep_b: list[list[float]] = []
        keep_l: list[int] = []
        keep_m: list[Any] = []
        n = len(self.ds.classes)
        for j, (b, lab) in enumerate(zip(boxes, labels, strict=False)):
            fixed = self._check_box(rec, j, b, lab, n, width, height)
            if fixed is None:
                continue
            keep_b.append(fixed)
            keep_l.append(lab)
            if isinstance(box_meta, list) and j < len(box_meta):
                keep_m.append(box_meta[j])
        if not boxes:
            self.add(rec, "no_annotations", "info", "image has no boxes", "kept (negative)")
        elif not keep_b:
            self.add(
                rec,
                "no_annotations",
                "info",
                "every box of this image is unusable",
                self.act("kept (negative) with no boxes"),
            )
        meta = dict(rec.meta)
        if isinstance(box_meta, list):
            meta["box_meta"] = keep_m
        return Record(
            rec.id, rec.file, width, height, rec.split, rec.label, rec.count, keep_b, keep_l, meta
        )

    def _check_box(
        self, rec: Record, j: int, b: Any, lab: Any, n: int, w: int, h: int
    ) -> list[float] | None:
        where = f"boxes[{j}]"
        if (
            not isinstance(b, (list, tuple))
            or len(b) != 4
            or not all(isinstance(v, (int, float)) for v in b)
        ):
            self._drop_box(
                rec, "box_invalid", f"box {j} is {b!r}, expected [x1, y1, x2, y2]", where
            )
            return None
        if not all(math.isfinite(float(v)) for v in b):
            self._drop_box(
                rec, "box_nan", f"box {j} {list(b)} has NaN or infinite coordinates", where
            )
            return None
        if not isinstance(lab, int) or not 0 <= lab < n:
            self._drop_box(
                rec,
                "label_out_of_range",
                f"box {j} label {lab!r} is not a class index in 0..{n - 1}",
                f"labels[{j}]",
            )
            return None
        box = [float(v) for v in b]
        if B.is_outside(box, w, h):
            self.add(
                rec,
                "box_outside",
                "error",
                f"box {j} {[round(v, 1) for v in box]} ({self.ds.classes[lab]}) extends outside the {w}x{h} image",
                self.act("clipped to the image"),
                field=where,
            )
            self.stats["boxes_clipped"] += 1
        clipped = B.clip(box, w, h)
        if B.is_degenerate(clipped):
            self._drop_box(
                rec,
                "box_zero_area",
                f"box {j} {[round(v, 1) for v in box]} ({self.ds.classes[lab]}) has zero area inside the image",
                where,
            )
            return None
        return clipped

    def _drop_box(self, rec: Record, kind: str, message: str, where: str) -> None:
        """An error that makes one box unusable: the box is dropped under ``skip``."""
        self.add(rec, kind, "error", message, self.act("dropped the box"), field=where)
        self.stats["boxes_dropped"] += 1

    # -- duplicates ---------------------------------------------------------------------
    def check_duplicates(self, results: list[ImageCheck]) -> int:
        """Group readable images by content hash; returns the number of groups."""
        groups = group_by_digest(
            [
                res.digest if res.error_kind is None and i not in self.drop else None
                for i, res in enumerate(results)
            ]
        )
        for digest, members in groups.items():
            first = self.ds.records[members[0]]
            first_path = str(self.ds.image_path(first))
            for i in members[1:]:
                self._duplicate(i, first, first_path, digest)
        return len(groups)

    def _duplicate(self, i: int, first: Record, first_path: str, digest: str) -> None:
        rec = self.ds.records[i]
        same_file = rec.file == first.file
        what = "the same file is listed again" if same_file else "same content as"
        msg = f"{what} {first_path} (id {first.id!r})"
        if self.task.one_class_per_image:
            a, b = self._label(first), self._label(rec)
            if a != b:
                msg += f" but labelled {b!r} instead of {a!r}"
        if rec.split is not None and first.split is not None and rec.split != first.split:
            self.add(
                rec,
                "leak",
                "error",
                f"{msg}: in split {rec.split!r}, the copy in {first.split!r} leaks into it",
                self.act(f"left out this copy from {rec.split!r}"),
                ref=first_path,
                field=f"blake2b:{digest}",
            )
            self.leave_out(i, "leak")
        else:
            self.add(
                rec,
                "duplicate",
                "warning",
                msg,
                "kept (remove one copy if unintended)",
                ref=first_path,
                field=f"blake2b:{digest}",
            )

    def _label(self, rec: Record) -> str:
        try:
            return self.ds.classes[self.ds.class_index(rec)]
        except (ValueError, IndexError, CvpipeError):
            return str(rec.label if rec.count is None else rec.count)
