"""``cvpipe validate``: decode every image, check every label and box, find duplicates.

What is checked, and the problem ``kind`` each finding gets (severity in brackets):

- images: ``image_missing``, ``image_empty``, ``image_unreadable``, ``image_truncated``,
  ``image_corrupt`` [error] from a full, strict decode; ``extension_mismatch`` (a PNG
  named ``.jpg``) [warning]; ``size_mismatch`` between the manifest and the real pixels
  [error for detect, whose boxes are in manifest pixels; warning otherwise];
  ``exif_orientation`` != 1 [warning: cvpipe uses the stored pixel orientation, so a
  photo shown upright by a viewer is trained on sideways];
- labels: ``label_out_of_range`` [error], ``duplicate_id`` [error];
- boxes (detect): ``box_outside`` the real image, ``box_zero_area``, ``box_nan``,
  ``box_invalid``, ``box_label_mismatch`` [error]; ``no_annotations`` [info, kept as a
  negative image];
- content duplicates (blake2b of the file bytes): ``duplicate`` [warning], and
  ``leak`` [error] when the copies sit in different splits (val/test metrics would be
  inflated). Every copy points to the first file of its group (``ref``).

Policies (``on_error``):

- ``report`` (default): write ``DATASET/validation.json`` and return; nothing else changes.
- ``fail``: the same, then raise :class:`~cvpipe.errors.ValidationFailed` (exit code 1)
  when any error-severity problem was found.
- ``skip``: also write a cleaned manifest: unreadable images, out-of-range labels,
  duplicate ids and the leaked copies are left out; boxes are clipped to the image;
  zero-area / NaN boxes are dropped; manifest sizes are corrected. With ``out=None``
  the cleaned manifest replaces ``DATASET/manifest.jsonl`` after the original is saved
  once as ``DATASET/manifest.orig.jsonl``; with ``out=DIR`` a new dataset directory is
  written instead (images still referenced from their original place). Image files are
  never touched. Every left-out record is listed in ``validation.json["left_out"]``.

Decoding runs in a thread pool (Pillow releases the GIL while decoding and hashlib while
hashing); only small per-image results are kept, never pixels, so 50k+ images are fine.

Example:
    >>> report = validate("datasets/bins", on_error="report")  # doctest: +SKIP
    >>> report.summary["errors"], report.counts()  # doctest: +SKIP
    (2, {'image_truncated': 1, 'leak': 1})
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from cvpipe.config import Config, load_config
from cvpipe.data import boxes as B
from cvpipe.data.images import ImageInfo, ImageReadError, decode
from cvpipe.data.manifest import (
    MANIFEST,
    Dataset,
    Record,
    iter_manifest,
    read_info,
    write_info,
    write_manifest,
)
from cvpipe.data.problems import Problem
from cvpipe.errors import CvpipeError, DatasetError, ValidationFailed
from cvpipe.io import atomic_write_bytes, write_json
from cvpipe.progress import Bar

log = logging.getLogger(__name__)

Severity = Literal["error", "warning", "info"]
REPORT_FILE = "validation.json"
ORIG_MANIFEST = "manifest.orig.jsonl"
_ORIENTATION_TAG = 0x0112
_HASH_BLOCK = 1 << 20


class ValidateConfig(Config):
    """Options of ``cvpipe validate``.

    Attributes:
        on_error: ``report`` | ``fail`` | ``skip`` (see the module docstring).
        out: with ``skip``, write the cleaned dataset here instead of in place.
        workers: decoding threads (default: ``os.cpu_count()``).
        hash: hash file bytes to find duplicates and split leaks.
        chunk_size: images per work item handed to a thread.
    """

    on_error: Literal["report", "fail", "skip"] = "report"
    out: str | None = None
    workers: int | None = Field(default=None, ge=1)
    hash: bool = True
    chunk_size: int = Field(default=64, ge=1)


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


@dataclass(slots=True, frozen=True)
class ImageCheck:
    """What decoding one image file found (small; no pixels are kept)."""

    error_kind: str | None = None
    error_message: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    orientation: int | None = None
    digest: str | None = None


@dataclass(slots=True)
class ValidationReport:
    """The result of :func:`validate` (also written as ``validation.json``).

    Attributes:
        dataset: the dataset directory validated.
        summary: counts (images, errors, warnings, info, kinds, duplicate groups, ...).
        problems: every finding, in manifest order.
        left_out: records the ``skip`` policy left out: ``{"id", "file", "reasons"}``.
        report_path: where ``validation.json`` was written.
        written: the cleaned dataset directory (``skip`` only, else None).
    """

    dataset: Path
    summary: dict[str, Any]
    problems: list[Finding]
    left_out: list[dict[str, Any]] = field(default_factory=list)
    report_path: Path | None = None
    written: Path | None = None

    @property
    def errors(self) -> list[Finding]:
        return [p for p in self.problems if p.severity == "error"]

    def counts(self) -> dict[str, int]:
        """Problems per kind, sorted by kind."""
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    def examples(self, kind: str, n: int = 3) -> list[Finding]:
        return [p for p in self.problems if p.kind == kind][:n]

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "problems": [p.to_json() for p in self.problems],
            "left_out": self.left_out,
        }


# -- per-image work (runs in threads) --------------------------------------------------
def hash_file(path: str | Path) -> str:
    """blake2b (128-bit) hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def check_image(path: str | Path, hash_bytes: bool = True) -> ImageCheck:
    """Fully decode one image (strict) and read what validation needs; keeps no pixels.

    Args:
        path: the image file.
        hash_bytes: also hash the file's bytes (for duplicate detection).

    Returns:
        An :class:`ImageCheck`; decoding failures are returned in ``error_kind``
        (``missing`` | ``empty`` | ``unreadable`` | ``truncated`` | ``corrupt``), not raised.
    """
    p = Path(path)
    digest = None
    if hash_bytes:
        try:
            digest = hash_file(p)
        except FileNotFoundError:
            return ImageCheck("missing", "image file not found")
        except OSError as exc:
            return ImageCheck("unreadable", f"cannot read file: {exc}")
    try:
        im = decode(p, mode=None)
    except ImageReadError as exc:
        kind = exc.kind
        if kind == "unreadable" and p.is_file() and p.stat().st_size == 0:
            kind = "empty"
        return ImageCheck(kind, exc.message, digest=digest)
    try:
        orientation = None
        try:
            orientation = im.getexif().get(_ORIENTATION_TAG)
        except Exception:  # a broken EXIF block is not worth failing the image for
            log.debug("%s: unreadable EXIF block", p)
        return ImageCheck(
            width=int(im.size[0]),
            height=int(im.size[1]),
            format=str(im.format),
            mode=str(im.mode),
            orientation=int(orientation) if isinstance(orientation, int) else None,
            digest=digest,
        )
    finally:
        im.close()


def hash_files(paths: list[Path], workers: int | None = None) -> list[str | None]:
    """blake2b digests of many files in a thread pool (None for a file that cannot be read)."""

    def one(p: Path) -> str | None:
        try:
            return hash_file(p)
        except OSError:
            return None

    with (
        Bar(total=len(paths), desc="hash", unit="file") as bar,
        ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="cvpipe-hash"
        ) as pool,
    ):
        out = []
        for d in pool.map(one, paths):
            out.append(d)
            bar.update()
    return out


def _check_chunk(paths: list[tuple[int, Path]], hash_bytes: bool) -> list[tuple[int, ImageCheck]]:
    return [(i, check_image(p, hash_bytes)) for i, p in paths]


def check_images(
    paths: list[Path], *, workers: int | None = None, hash_bytes: bool = True, chunk_size: int = 64
) -> list[ImageCheck]:
    """Check many images in a thread pool with a progress bar; results in input order."""
    results: list[ImageCheck | None] = [None] * len(paths)
    workers = workers or os.cpu_count() or 1
    indexed = list(enumerate(paths))
    chunks = [indexed[i : i + chunk_size] for i in range(0, len(indexed), chunk_size)]
    with Bar(total=len(paths), desc="validate", unit="img") as bar:
        if workers == 1:
            for chunk in chunks:
                for i, res in _check_chunk(chunk, hash_bytes):
                    results[i] = res
                bar.update(len(chunk))
        else:
            with ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="cvpipe-validate"
            ) as pool:
                futures = [pool.submit(_check_chunk, c, hash_bytes) for c in chunks]
                for fut in as_completed(futures):
                    done = fut.result()
                    for i, res in done:
                        results[i] = res
                    bar.update(len(done))
    return [r if r is not None else ImageCheck("unreadable", "not checked") for r in results]


# -- the validation pass -----------------------------------------------------------------
class _Pass:
    """State of one validation run: the findings and, for ``skip``, the cleaned records."""

    def __init__(self, ds: Dataset, policy: str) -> None:
        self.ds = ds
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
        classes = self.ds.classes
        if self.ds.task == "classify" and (rec.label is None or not 0 <= rec.label < len(classes)):
            self.add(
                rec,
                "label_out_of_range",
                "error",
                f"label {rec.label!r} is not a class index in 0..{len(classes) - 1}",
                self.act("left out the image"),
                field="label",
            )
            self.leave_out(i, "label_out_of_range")
        elif self.ds.task == "count" and str(rec.count) not in classes:
            self.add(
                rec,
                "label_out_of_range",
                "error",
                f"count {rec.count!r} is not one of the classes {classes}",
                self.act("left out the image"),
                field="count",
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
        if res.orientation not in (None, 1):
            self.add(
                rec,
                "exif_orientation",
                "warning",
                f"EXIF orientation is {res.orientation}: viewers rotate this photo, cvpipe uses the stored pixels as they are",
                "kept as stored (rotate the file yourself if the stored orientation is wrong)",
            )
        if (res.width, res.height) != (rec.width, rec.height):
            sev: Severity = "error" if self.ds.task == "detect" else "warning"
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
            self.add(
                rec,
                "box_invalid",
                "error",
                f"box {j} is {b!r}, expected [x1, y1, x2, y2]",
                self.act("dropped the box"),
                field=where,
            )
            self.stats["boxes_dropped"] += 1
            return None
        if not all(math.isfinite(float(v)) for v in b):
            self.add(
                rec,
                "box_nan",
                "error",
                f"box {j} {list(b)} has NaN or infinite coordinates",
                self.act("dropped the box"),
                field=where,
            )
            self.stats["boxes_dropped"] += 1
            return None
        if not isinstance(lab, int) or not 0 <= lab < n:
            self.add(
                rec,
                "label_out_of_range",
                "error",
                f"box {j} label {lab!r} is not a class index in 0..{n - 1}",
                self.act("dropped the box"),
                field=f"labels[{j}]",
            )
            self.stats["boxes_dropped"] += 1
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
            self.add(
                rec,
                "box_zero_area",
                "error",
                f"box {j} {[round(v, 1) for v in box]} ({self.ds.classes[lab]}) has zero area inside the image",
                self.act("dropped the box"),
                field=where,
            )
            self.stats["boxes_dropped"] += 1
            return None
        return clipped

    # -- duplicates ---------------------------------------------------------------------
    def check_duplicates(self, results: list[ImageCheck]) -> int:
        """Group readable images by content hash; returns the number of groups."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, res in enumerate(results):
            if res.digest is not None and res.error_kind is None and i not in self.drop:
                groups[res.digest].append(i)
        n_groups = 0
        for digest, members in groups.items():
            if len(members) < 2:
                continue
            n_groups += 1
            first = self.ds.records[members[0]]
            first_path = str(self.ds.image_path(first))
            for i in members[1:]:
                self._duplicate(i, first, first_path, digest)
        return n_groups

    def _duplicate(self, i: int, first: Record, first_path: str, digest: str) -> None:
        rec = self.ds.records[i]
        same_file = rec.file == first.file
        what = "the same file is listed again" if same_file else "same content as"
        msg = f"{what} {first_path} (id {first.id!r})"
        if self.ds.task != "detect":
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


# -- entry point -------------------------------------------------------------------------
def load_unchecked(root: str | Path) -> Dataset:
    """Load a dataset without :meth:`Dataset.check_labels`, so bad labels become findings.

    Raises:
        DatasetError: the directory, ``dataset.yaml`` or the manifest is missing.
        DatasetFormatError: a manifest line is not valid JSON or lacks a required field.
    """
    root = Path(root)
    info = read_info(root)
    return Dataset(root, info, list(iter_manifest(root / MANIFEST)))


def validate(
    dataset: str | Path | Dataset,
    on_error: Literal["report", "fail", "skip"] = "report",
    out: str | Path | None = None,
    workers: int | None = None,
    *,
    hash: bool = True,
    chunk_size: int = 64,
) -> ValidationReport:
    """Decode every image, check labels and boxes, find duplicates; report or clean.

    Args:
        dataset: a dataset directory (or a loaded :class:`Dataset`).
        on_error: ``report`` writes ``validation.json`` only; ``fail`` also raises when an
            error-severity problem was found; ``skip`` also writes a cleaned manifest
            (in place, keeping the original as ``manifest.orig.jsonl``, or into ``out``).
        out: with ``skip``, a new dataset directory for the cleaned manifest (images stay
            where they are and are referenced from there).
        workers: decoding threads (default ``os.cpu_count()``).
        hash: hash file contents to find duplicates and split leaks.
        chunk_size: images per work item.

    Returns:
        The :class:`ValidationReport` (also written to ``DATASET/validation.json``).

    Raises:
        ValidationFailed: ``on_error="fail"`` and at least one error-severity problem
            (the exception's ``report`` attribute holds the report).
        DatasetError: the dataset directory is missing or incomplete, or ``skip`` would
            leave no record at all.
        ConfigError: an invalid option value.

    Example:
        >>> r = validate("datasets/planes", on_error="skip", out="datasets/planes_clean")  # doctest: +SKIP
        >>> [x["id"] for x in r.left_out]  # doctest: +SKIP
        ['img_0042']
    """
    cfg = load_config(
        ValidateConfig,
        values={
            "on_error": on_error,
            "out": str(out) if out is not None else None,
            "workers": workers,
            "hash": hash,
            "chunk_size": chunk_size,
        },
    )
    ds = dataset if isinstance(dataset, Dataset) else load_unchecked(dataset)
    t0 = time.perf_counter()
    vp = _Pass(ds, cfg.on_error)
    vp.check_ids()
    for i, rec in enumerate(ds.records):
        vp.check_label(i, rec)
    results = check_images(
        [ds.image_path(r) for r in ds.records],
        workers=cfg.workers,
        hash_bytes=cfg.hash,
        chunk_size=cfg.chunk_size,
    )
    cleaned: list[Record | None] = []
    for i, (rec, res) in enumerate(zip(ds.records, results, strict=True)):
        if not vp.check_image_result(i, rec, res):
            cleaned.append(None)
        elif ds.task == "detect":
            cleaned.append(vp.check_boxes(i, rec, res.width or rec.width, res.height or rec.height))
        else:
            cleaned.append(
                replace(rec, width=res.width or rec.width, height=res.height or rec.height)
            )
    n_groups = vp.check_duplicates(results) if cfg.hash else None
    report = ValidationReport(
        ds.root, _summary(ds, vp, cfg, n_groups, time.perf_counter() - t0), vp.problems
    )
    if cfg.on_error == "skip":
        report.left_out = [
            {"id": ds.records[i].id, "file": ds.records[i].file, "reasons": sorted(set(reasons))}
            for i, reasons in sorted(vp.drop.items())
        ]
        kept = [r for i, r in enumerate(cleaned) if r is not None and i not in vp.drop]
        report.written = _write_cleaned(ds, kept, cfg.out, report)
    report.report_path = ds.root / REPORT_FILE
    write_json(report.report_path, report.to_json())
    if report.written is not None and report.written.resolve() != ds.root.resolve():
        write_json(report.written / REPORT_FILE, report.to_json())
    log.info(
        "validated %d images: %d errors, %d warnings",
        len(ds),
        report.summary["errors"],
        report.summary["warnings"],
    )
    if cfg.on_error == "fail" and report.errors:
        raise _failure(report)
    return report


def _summary(
    ds: Dataset, vp: _Pass, cfg: ValidateConfig, n_groups: int | None, seconds: float
) -> dict[str, Any]:
    sev = Counter(p.severity for p in vp.problems)
    kinds = Counter(p.kind for p in vp.problems)
    return {
        "dataset": str(ds.root),
        "task": ds.task,
        "images": len(ds),
        "policy": cfg.on_error,
        "errors": sev["error"],
        "warnings": sev["warning"],
        "info": sev["info"],
        "images_with_errors": len({p.id for p in vp.problems if p.severity == "error"}),
        "unusable_records": len(vp.drop),
        "kinds": dict(sorted(kinds.items())),
        "duplicate_groups": n_groups,
        "leaks": kinds["leak"],
        "boxes_clipped": vp.stats["boxes_clipped"],
        "boxes_dropped": vp.stats["boxes_dropped"],
        "sizes_corrected": vp.stats["sizes_corrected"],
        "hashed": cfg.hash,
        "seconds": round(seconds, 3),
    }


def _write_cleaned(
    ds: Dataset, kept: list[Record], out: str | None, report: ValidationReport
) -> Path:
    """Write the cleaned manifest in place (backing up the original once) or into ``out``."""
    n_out = len(ds) - len(kept)
    if not kept:
        raise DatasetError(
            f"{ds.root}: every record is unusable ({report.counts()}); nothing written. See {REPORT_FILE}"
        )
    entry = f"validate --on-error skip: left out {n_out} of {len(ds)} records"
    history = [*ds.info.history, entry]
    report.summary["left_out"] = n_out
    if out is not None and Path(out).resolve() != ds.root.resolve():
        dest = Path(out)
        info = ds.rebased_info(dest).model_copy(
            update={"derived_from": str(ds.root.resolve()), "history": history}
        )
        Dataset(dest, info, kept).save()
        report.summary["written"] = str(dest)
        return dest
    if n_out == 0 and kept == ds.records:
        report.summary["written"] = None
        log.info("nothing to clean; %s left unchanged", ds.root / MANIFEST)
        return ds.root
    manifest, orig = ds.root / MANIFEST, ds.root / ORIG_MANIFEST
    if manifest.is_file() and not orig.exists():
        atomic_write_bytes(orig, manifest.read_bytes())
    write_manifest(manifest, kept)
    write_info(ds.root, ds.info.model_copy(update={"history": history}))
    report.summary["written"] = str(manifest)
    report.summary["original_manifest"] = str(orig) if orig.exists() else None
    return ds.root


def _failure(report: ValidationReport) -> ValidationFailed:
    kinds = Counter(p.kind for p in report.errors)
    listing = ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items()))
    exc = ValidationFailed(
        f"{report.dataset}: {len(report.errors)} error(s) in {report.summary['images_with_errors']} image(s) "
        f"({listing}); details in {report.report_path}. Fix them, or write a cleaned manifest with --on-error skip"
    )
    exc.report = report  # type: ignore[attr-defined]
    return exc
