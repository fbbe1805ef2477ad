"""``cvpipe audit --fix OUT``: a cleaned copy of the dataset, inputs untouched.

From the findings of :func:`cvpipe.audit.scan.audit`:

- a duplicate group that crosses splits (a leak) is moved to one split, the first of
  ``train``, ``val``, ``test`` (or other split names, alphabetically) it has a member in, so
  evaluation splits no longer hold copies of training images;
- duplicates within one split are collapsed to one record (the first in manifest order);
- likely label errors keep their labels unless ``relabel`` is set, when they take the
  suggested label (classify: ``label``; count: ``count``).

``OUT`` gets a new ``dataset.yaml`` + ``manifest.jsonl`` referencing the same image files
(``image_root`` rebased, ``derived_from`` set) and ``audit_fix.json`` listing every change.

Example:
    >>> fixed = write_fixed(result, "datasets/weather-clean", relabel=False)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvpipe.data.manifest import MANIFEST, Dataset
from cvpipe.errors import ConfigError
from cvpipe.io import write_json
from cvpipe.tasks.registry import get_task

if TYPE_CHECKING:
    from cvpipe.audit.scan import AuditResult

SPLIT_ORDER = ("train", "val", "test")


def _target_split(splits: list[str | None]) -> str | None:
    present = set(splits)
    for s in SPLIT_ORDER:
        if s in present:
            return s
    named = sorted(s for s in present if s is not None)
    return named[0] if named else None


def _check_out(src: Path, out: Path) -> None:
    if out.resolve() == src.resolve():
        raise ConfigError(
            f"--fix {out}: is the dataset itself; give a new directory (inputs are never modified)"
        )
    if (out / MANIFEST).exists():
        raise ConfigError(
            f"--fix {out}: already holds a dataset ({out / MANIFEST}); choose a new directory"
        )


def write_fixed(result: AuditResult, out: str | Path, *, relabel: bool = False) -> dict[str, Any]:
    """Write the cleaned dataset into ``out``; returns the change summary.

    Raises:
        ConfigError: ``out`` is the input dataset or already holds a dataset.
    """
    ds = result.dataset
    out = Path(out)
    _check_out(ds.root, out)
    recs = result.records
    pos = {r.id: k for k, r in enumerate(recs)}
    new = [copy.deepcopy(r) for r in ds.records]
    by_id = {r.id: r for r in new}
    moved, dropped, relabelled = [], [], []
    for g in result.groups:
        members = [by_id[recs[i].id] for i in g.members]
        if g.leak:
            target = _target_split(g.splits)
            for m in members:
                if m.split != target:
                    moved.append({"id": m.id, "file": m.file, "from": m.split, "to": target})
                    m.split = target
        keep: dict[str | None, str] = {}
        for m in members:
            if m.split in keep:
                dropped.append(
                    {"id": m.id, "file": m.file, "split": m.split, "duplicate_of": keep[m.split]}
                )
            else:
                keep[m.split] = m.id
    if relabel:
        task = get_task(ds.task)
        for t in result.label_issues:
            r = by_id[recs[t.index].id]
            old = ds.classes[t.given]
            for name, value in task.label_fields(ds.classes[t.suggested], ds.classes).items():
                setattr(r, name, value)
            relabelled.append(
                {"id": r.id, "file": r.file, "from": old, "to": ds.classes[t.suggested]}
            )
    gone = {d["id"] for d in dropped}
    records = [r for r in new if r.id not in gone]
    line = f"audit --fix: {len(moved)} moved to one split, {len(dropped)} duplicates dropped" + (
        f", {len(relabelled)} relabelled" if relabel else ""
    )
    info = ds.rebased_info(out).model_copy(
        update={
            "derived_from": str(ds.root.resolve()),
            "history": [*ds.info.history, line],
            "name": out.resolve().name,
        }
    )
    Dataset(out, info, records).save()
    summary = {
        "source": str(ds.root.resolve()),
        "records_in": len(ds.records),
        "records_out": len(records),
        "moved": moved,
        "dropped": dropped,
        "relabelled": relabelled,
        "label_issues_left": [] if relabel else [recs[t.index].id for t in result.label_issues],
        "audited_only": len(pos) < len(ds.records),
    }
    write_json(out / "audit_fix.json", summary)
    return summary
