"""Class balancing into a new dataset directory, plus class weights.

Strategies (seeded; records are sorted by ``(id, file)`` before sampling):

- ``undersample``: every class down to the smallest non-empty class (seed 002).
- ``oversample``: every class up to the largest by repeating records; a repeat gets the id
  ``"<id>#2"``, ``"<id>#3"``... and ``meta["oversampled_from"] = "<id>"``. Whole extra
  rounds repeat every record once before any record is repeated twice.
- ``target``: each class to ``per_class`` images, or to its own count from
  ``target={"1": 300, "2": 400}`` (classes left out of ``target`` fall back to
  ``per_class``, else stay as they are); above the target it undersamples, below it
  oversamples.

Only the splits named in ``splits`` are resampled, each on its own; the default is
``["train"]`` because balancing validation or test sets changes what their metrics mean.
``splits=["all"]`` resamples every split (and unsplit records) separately.

Detection: an image carries several classes, so images are balanced by their **rarest
class** (the class present in the fewest images of that split). Images without objects
are kept as they are. Object counts per class then move towards balance but are not exact;
the before/after table shows both.

Class weights (inverse frequency normalised to mean 1 over the classes present; a class
absent from train gets 0) are computed on the train split of the result (images per class,
or objects per class for detection; all records when there is no train split) and written
to ``dataset.yaml`` ``class_weights`` and ``class_weights.json``.

The source dataset is never modified: the result is a new dataset directory whose
manifest references the same image files (``image_root`` rebased, ``derived_from`` set).

Example:
    >>> res = balance("datasets/bins", out="datasets/bins-balanced", strategy="undersample")  # doctest: +SKIP
    >>> res.after["train"]  # doctest: +SKIP
    [860, 860, 860, 860, 860]
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from cvpipe.config import Config, load_config
from cvpipe.data.manifest import SPLITS, Dataset, Record
from cvpipe.data.strata import NO_CLASS
from cvpipe.errors import ConfigError, DatasetError
from cvpipe.io import write_json
from cvpipe.registry import suggest
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)

Strategy = Literal["undersample", "oversample", "target"]


class BalanceConfig(Config):
    """Options of ``cvpipe balance``.

    Attributes:
        out: new dataset directory to write (required; the source is never modified).
        strategy: ``undersample`` | ``oversample`` | ``target``.
        splits: splits to resample (default train only), or ``["all"]``.
        per_class: target images per class (strategy ``target``).
        target: class name → target images (strategy ``target``), e.g. ``"1:300,2:400"``.
        seed: random seed.
    """

    out: str | None = None
    strategy: Strategy = "undersample"
    splits: list[str] = ["train"]
    per_class: int | None = Field(default=None, ge=1)
    target: dict[str, int] | None = None
    seed: int = 0

    @field_validator("out", mode="before")
    @classmethod
    def _path_to_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, PathLike) else v

    @field_validator("splits", mode="before")
    @classmethod
    def _splits_from_text(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("target", mode="before")
    @classmethod
    def _target_from_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        out: dict[str, Any] = {}
        for item in (x.strip() for x in v.split(",")):
            if not item:
                continue
            name, sep, n = item.rpartition(":")
            if not sep or not name.strip():
                raise ValueError(f"{item!r} is not CLASS:COUNT (e.g. 1:300,2:400)")
            out[name.strip()] = n.strip()
        return out


@dataclass
class BalanceResult:
    """What :func:`balance` did.

    Attributes:
        out: the new dataset directory.
        task: dataset task.
        classes: class names.
        unit: what ``before``/``after`` count (``images per class`` or ``images per rarest class``).
        before: split → count per class before, for every split in the dataset.
        after: split → count per class after.
        balanced: the splits that were resampled.
        objects_before: detection only: split → objects per class before.
        objects_after: detection only: split → objects per class after.
        class_weights: one weight per class (mean 1 over present classes).
        warnings: classes that could not be balanced, and why.
    """

    out: Path
    task: str
    classes: list[str]
    unit: str
    before: dict[str, list[int]]
    after: dict[str, list[int]]
    balanced: list[str]
    class_weights: list[float]
    objects_before: dict[str, list[int]] = field(default_factory=dict)
    objects_after: dict[str, list[int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def class_weights(counts: list[int]) -> list[float]:
    """Inverse-frequency weights normalised to mean 1 over the classes present.

    Example:
        >>> class_weights([10, 20, 40])
        [1.714286, 0.857143, 0.428571]
    """
    present = [n for n in counts if n > 0]
    if not present:
        return [0.0] * len(counts)
    mean_inv = sum(1.0 / n for n in present) / len(present)
    return [round((1.0 / n) / mean_inv, 6) if n > 0 else 0.0 for n in counts]


def _split_name(split: str | None) -> str:
    return split if split is not None else "none"


def _split_order(records: list[Record]) -> list[str | None]:
    present = {r.split for r in records}
    named = [s for s in SPLITS if s in present] + sorted(
        s for s in present if s is not None and s not in SPLITS
    )
    return named + ([None] if None in present else [])


def _keys(ds: Dataset, recs: list[Record]) -> list[int]:
    """Balancing key per record: the class it stands for, as the task stratifies
    (:mod:`cvpipe.data.strata`): its class, or its rarest class (or NO_CLASS)."""
    return get_task(ds.task).strata().image_keys(recs, ds.classes)


def _targets(ds: Dataset, cfg: BalanceConfig, sizes: list[int]) -> list[int]:
    present = [n for n in sizes if n > 0]
    if cfg.strategy == "undersample":
        return [min(present)] * len(sizes)
    if cfg.strategy == "oversample":
        return [max(present)] * len(sizes)
    wanted = dict(cfg.target or {})
    unknown = [k for k in wanted if k not in ds.output_classes]
    if unknown:
        hint = suggest(unknown[0], ds.output_classes)
        raise ConfigError(
            f"target: unknown class {unknown[0]!r}; {hint}classes: {', '.join(ds.output_classes)}"
        )
    return [
        wanted.get(name, cfg.per_class if cfg.per_class is not None else sizes[c])
        for c, name in enumerate(ds.output_classes)
    ]


def _resample(
    ds: Dataset,
    recs: list[Record],
    cfg: BalanceConfig,
    rng: np.random.Generator,
    taken_ids: set[str],
    warnings: list[str],
    where: str,
) -> list[Record]:
    recs = sorted(recs, key=lambda r: (r.id, r.file))
    keys = _keys(ds, recs)
    by_key: dict[int, list[Record]] = defaultdict(list)
    for r, k in zip(recs, keys, strict=True):
        by_key[k].append(r)
    sizes = [len(by_key.get(c, [])) for c in range(len(ds.output_classes))]
    if not any(sizes):
        return recs
    for c, n in enumerate(sizes):
        if n == 0:
            msg = f"split {where}: class {ds.output_classes[c]!r} has no images; it cannot be balanced"
            warnings.append(msg)
            log.warning(msg)
    targets = _targets(ds, cfg, sizes)
    out: list[Record] = list(by_key.get(NO_CLASS, []))
    extra: list[Record] = []
    for c in range(len(ds.output_classes)):
        group, n, t = by_key.get(c, []), sizes[c], targets[c]
        if n == 0:
            continue
        if t <= n:
            keep = sorted(rng.choice(n, size=t, replace=False).tolist())
            out += [group[i] for i in keep]
            continue
        out += group
        k = t - n
        picks = list(range(n)) * (k // n) + sorted(
            rng.choice(n, size=k % n, replace=False).tolist()
        )
        extra += [_repeat(group[i], taken_ids) for i in picks]
    order = {id(r): i for i, r in enumerate(recs)}
    out.sort(key=lambda r: order[id(r)])
    return out + extra


def _repeat(rec: Record, taken_ids: set[str]) -> Record:
    n = 2
    while f"{rec.id}#{n}" in taken_ids:
        n += 1
    new_id = f"{rec.id}#{n}"
    taken_ids.add(new_id)
    meta = copy.deepcopy(rec.meta)
    meta["oversampled_from"] = rec.id
    return Record(
        id=new_id,
        file=rec.file,
        width=rec.width,
        height=rec.height,
        split=rec.split,
        label=rec.label,
        count=rec.count,
        boxes=copy.deepcopy(rec.boxes),
        labels=list(rec.labels) if rec.labels is not None else None,
        meta=meta,
    )


def _key_counts(ds: Dataset, records: list[Record]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for split in _split_order(records):
        recs = [r for r in records if r.split == split]
        counts = [0] * len(ds.output_classes)
        for k in _keys(ds, recs):
            if k != NO_CLASS:
                counts[k] += 1
        out[_split_name(split)] = counts
    return out


def _object_counts(ds: Dataset, records: list[Record]) -> dict[str, list[int]]:
    """Objects per class per split (the task's class counts)."""
    task = get_task(ds.task)
    out: dict[str, list[int]] = {}
    for split in _split_order(records):
        counts = [0] * len(ds.output_classes)
        for r in records:
            if r.split == split:
                for c in task.record_classes(r, ds.classes):
                    counts[c] += 1
        out[_split_name(split)] = counts
    return out


def _check(ds: Dataset, cfg: BalanceConfig, src: Path) -> tuple[Path, list[str | None]]:
    if not cfg.out:
        raise ConfigError(
            "balance needs an output directory: --out DIR (a new dataset; the source is never modified)"
        )
    out = Path(cfg.out)
    if out.resolve() == src.resolve():
        raise ConfigError(
            f"--out {out} is the source dataset; balance writes a new dataset, give another directory"
        )
    if cfg.strategy == "target" and cfg.per_class is None and not cfg.target:
        raise ConfigError(
            "strategy 'target' needs --per-class N or --target CLASS:N,... (e.g. --target 1:300,2:400)"
        )
    if cfg.strategy != "target" and (cfg.per_class is not None or cfg.target):
        raise ConfigError(f"--per-class/--target apply to --strategy target, not {cfg.strategy!r}")
    present = _split_order(ds.records)
    if cfg.splits == ["all"]:
        return out, present
    bad = [s for s in cfg.splits if s not in SPLITS]
    if bad:
        raise ConfigError(
            f"splits: unknown split {bad[0]!r}; {suggest(bad[0], [*SPLITS, 'all'])}valid: train, val, test, all"
        )
    chosen: list[str | None] = [s for s in present if s in cfg.splits]
    if not chosen:
        have = ", ".join(_split_name(s) for s in present)
        raise DatasetError(
            f"{src}: no images in split(s) {', '.join(cfg.splits)} (splits here: {have}); "
            f"run 'cvpipe split {src}' first, or pass --splits all"
        )
    return out, chosen


def balance_dataset(dataset: str | Path, cfg: BalanceConfig) -> BalanceResult:
    """Balance ``dataset`` into the new dataset directory ``cfg.out``.

    Args:
        dataset: source dataset directory (read only).
        cfg: resolved :class:`BalanceConfig`.

    Returns:
        :class:`BalanceResult` with before/after counts and class weights.

    Raises:
        ConfigError: missing/identical --out, bad strategy options, unknown class or split.
        DatasetError: the chosen splits hold no images.
    """
    src = Path(dataset)
    ds = Dataset.load(src)
    task = get_task(ds.task)
    out, chosen = _check(ds, cfg, src)
    rng = np.random.default_rng(cfg.seed)
    warnings: list[str] = []
    taken = {r.id for r in ds.records}
    records: list[Record] = []
    for split in _split_order(ds.records):
        recs = [r for r in ds.records if r.split == split]
        if split in chosen:
            recs = _resample(ds, recs, cfg, rng, taken, warnings, _split_name(split))
        records += recs
    train = [r for r in records if r.split == "train"]
    if not train:
        warnings.append("no train split: class weights computed on all images")
    basis = train or records
    counts = Dataset(out, ds.info, basis).class_counts("all")
    weights = class_weights(counts)
    line = (
        f"balance {cfg.strategy} splits={','.join(_split_name(s) for s in chosen)} seed={cfg.seed}"
    )
    if cfg.strategy == "target":
        line += f" per_class={cfg.per_class} target={cfg.target}"
    info = ds.rebased_info(out).model_copy(
        update={
            "derived_from": str(src.resolve()),
            "class_weights": weights,
            "history": [*ds.info.history, line],
            "name": out.resolve().name,
        }
    )
    new = Dataset(out, info, records)
    new.save()
    write_json(
        out / "class_weights.json",
        {
            "classes": list(ds.output_classes),
            "weights": weights,
            "counts": counts,
            "computed_on": "train" if train else "all",
            "unit": task.unit,
            "method": "inverse frequency, normalised to mean 1 over present classes",
        },
    )
    log.debug("balanced %s into %s (%d → %d images)", src, out, len(ds), len(new))
    res = BalanceResult(
        out=out,
        task=ds.task,
        classes=list(ds.output_classes),
        unit=task.strata().balance_unit,
        before=_key_counts(ds, ds.records),
        after=_key_counts(ds, records),
        balanced=[_split_name(s) for s in chosen],
        class_weights=weights,
        warnings=warnings,
    )
    if not task.one_class_per_image:  # images balanced; their objects only move closer
        res.objects_before, res.objects_after = (
            _object_counts(ds, ds.records),
            _object_counts(ds, records),
        )
    return res


def balance(dataset: str | Path, **options: Any) -> BalanceResult:
    """``cvpipe balance``: resample classes of ``dataset`` into a new dataset directory.

    Args:
        dataset: source dataset directory; never modified.
        **options: fields of :class:`BalanceConfig` (``out`` required, ``strategy``,
            ``splits``, ``per_class``, ``target``, ``seed``).

    Returns:
        :class:`BalanceResult`.

    Raises:
        ConfigError, DatasetError: see :func:`balance_dataset`.

    Example:
        >>> balance("datasets/bins", out="datasets/bins-over", strategy="oversample")  # doctest: +SKIP
    """
    return balance_dataset(dataset, load_config(BalanceConfig, values=options))
