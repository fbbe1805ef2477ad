"""``cvpipe validate``: decode every image, check every label and box, find duplicates.

What is checked, and the problem ``kind`` each finding gets (severity in brackets):

- images: ``image_missing``, ``image_empty``, ``image_unreadable``, ``image_truncated``,
  ``image_corrupt`` [error] from a full, strict decode; ``extension_mismatch`` (a PNG
  named ``.jpg``) [warning]; ``size_mismatch`` between the manifest and the real pixels
  [error for detect, whose boxes are in manifest pixels; warning otherwise];
  ``exif_orientation`` 2-8 [warning: cvpipe uses the stored pixel orientation, so a
  photo shown upright by a viewer is trained on sideways; ``cvpipe import --exif apply``
  turns it]; ``exif_orientation_invalid`` for values outside 1-8 (0, 65537, ...)
  [warning: no viewer turns such a photo]; in datasets imported with ``--exif apply``
  sizes are checked in the record's oriented frame and an applied orientation is fine;

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

Where things live: this module runs the pass and applies the policy;
:mod:`cvpipe.data.image_checks` decodes the files, :mod:`cvpipe.data.record_checks`
turns results into findings, :mod:`cvpipe.data.duplicates` hashes and groups files.

Example:
    >>> report = validate("datasets/bins", on_error="report")  # doctest: +SKIP
    >>> report.summary["errors"], report.counts()  # doctest: +SKIP
    (2, {'image_truncated': 1, 'leak': 1})
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from cvpipe.config import Config, load_config
from cvpipe.data.duplicates import hash_file, hash_files
from cvpipe.data.image_checks import ImageCheck, check_image, check_images
from cvpipe.data.manifest import (
    MANIFEST,
    Dataset,
    Record,
    iter_manifest,
    read_info,
    write_info,
    write_manifest,
)
from cvpipe.data.record_checks import Finding, Severity, ValidationPass
from cvpipe.errors import DatasetError, ValidationFailed
from cvpipe.io import atomic_write_bytes, write_json

__all__ = [
    "ORIG_MANIFEST",
    "REPORT_FILE",
    "Finding",
    "ImageCheck",
    "Severity",
    "ValidateConfig",
    "ValidationReport",
    "check_image",
    "check_images",
    "hash_file",
    "hash_files",
    "load_unchecked",
    "validate",
]

log = logging.getLogger(__name__)

REPORT_FILE = "validation.json"
ORIG_MANIFEST = "manifest.orig.jsonl"


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
    vp = ValidationPass(ds, cfg.on_error)
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
    for i, (rec, stored) in enumerate(zip(ds.records, results, strict=True)):
        res = stored.in_frame(rec.orientation)  # sizes as the record's decode sees them
        if not vp.check_image_result(i, rec, res):
            cleaned.append(None)
        else:
            w, h = res.width or rec.width, res.height or rec.height
            cleaned.append(vp.task.check_record(vp, i, rec, w, h))
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
    ds: Dataset, vp: ValidationPass, cfg: ValidateConfig, n_groups: int | None, seconds: float
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
