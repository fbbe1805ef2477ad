"""Seeded, stratified train/val/test splits, written into the dataset's own manifest.

Rules (each one is tested):

- **Reproducible.** Records are sorted by ``(id, file)`` before anything random happens
  and every draw comes from ``numpy.random.default_rng(seed)``: the same seed and the same
  manifest give the same split whatever the manifest's line order; another seed gives
  another split.
- **Ratios** ``"70/20/10"`` (train/val/test), ``"80/20"`` (train/val) or decimals
  ``"0.8,0.2"``; they must sum to 100 or to 1.
- **Stratified** by class (classify), by count (count), and for detection by the rarest
  class present in the image plus a bucketed object count (0, 1, 2, 3-4, 5-8, 9+; rare
  buckets of a class are merged). Within every stratum the split sizes follow the ratios
  by the largest-remainder rule, and the leftover units are handed out so that the
  *totals* match the ratios too; every split is then within one image of the exact share
  of every class. Strata of one or two images go to train. For detection, a class present
  in at least as many images as there are splits appears in every split.
- **Fixed test size** ``test_per_class=N`` (seed 001): exactly N images of each class go
  to test, then the rest is split over train/val by the (two) ratios. A class with N
  images or fewer is an error (it would leave nothing to train on) that names the class
  and the largest N that works; classes with no image at all are skipped with a warning.
- **Groups** ``group_key="meta.FIELD"`` or ``group_pattern=REGEX`` (matched against the
  file name; its first group, or the whole match, is the group): whole groups go to one
  split, so related images never straddle splits. Ratios then apply approximately (groups
  are placed greedily where the split is furthest below its share).
- **Existing splits** are refused unless ``force=True`` (overwrite all) or
  ``keep_existing=True`` (keep them; split only records that have none).

Where things live: this module places units (images or groups) into splits and writes
the manifest; :mod:`cvpipe.data.ratios` turns ratios into image numbers per stratum, and
the task says what a stratum is (:mod:`cvpipe.data.strata`).

Example:
    >>> res = split("datasets/bins", ratios="70/20/10", seed=0)  # doctest: +SKIP
    >>> res.images  # doctest: +SKIP
    {'train': 7309, 'val': 2088, 'test': 1044}
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from cvpipe.config import Config, load_config
from cvpipe.data.manifest import SPLITS, Dataset, Record
from cvpipe.data.ratios import allocate, parse_ratios
from cvpipe.errors import ConfigError, DatasetError
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)


class SplitConfig(Config):
    """Options of ``cvpipe split``.

    Attributes:
        ratios: ``"70/20/10"``, ``"80/20"``, ``"0.8,0.2"``: train/val[/test], summing to 100 or 1.
        seed: random seed; same seed + same manifest = same split.
        test_per_class: put exactly this many images of every class into test (classify/count).
        stratify: keep class proportions in every split (default); ``False`` shuffles freely.
        group_key: ``meta.FIELD`` (or ``id``/``file``) whose equal values stay in one split.
        group_pattern: regex on the file name; its first group (or whole match) is the group.
        keep_existing: keep splits already assigned and split only the rest.
        force: overwrite splits already assigned.
    """

    ratios: str = "80/20"
    seed: int = 0
    test_per_class: int | None = Field(default=None, ge=1)
    stratify: bool = True
    group_key: str | None = None
    group_pattern: str | None = None
    keep_existing: bool = False
    force: bool = False

    @field_validator("ratios", mode="before")
    @classmethod
    def _ratios_from_list(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return "/".join(str(x) for x in v)
        return v


@dataclass
class SplitResult:
    """What :func:`split` did.

    Attributes:
        dataset: the dataset directory whose manifest was rewritten.
        task: the dataset's task.
        classes: class names.
        ratios: split name → fraction.
        counts: split → images per class (classify/count) or images containing each class (detect).
        images: split → number of images.
        assigned: records given a split by this call (the others kept theirs).
        warnings: things the user should know (skipped classes, records without group).
    """

    dataset: Path
    task: str
    classes: list[str]
    ratios: dict[str, float]
    counts: dict[str, list[int]]
    images: dict[str, int]
    assigned: int
    warnings: list[str] = field(default_factory=list)


# -- units and strata ---------------------------------------------------------------------
@dataclass
class _Unit:
    members: list[int]  # indices into ds.records
    key: Hashable = 0


def _group_of(rec: Record, cfg: SplitConfig, pattern: re.Pattern[str] | None) -> str | None:
    if pattern is not None:
        m = pattern.search(Path(rec.file).name)
        if m is None:
            return None
        return m.group(1) if m.groups() else m.group(0)
    assert cfg.group_key is not None
    path = cfg.group_key.split(".")
    if path[0] in ("id", "file") and len(path) == 1:
        return str(getattr(rec, path[0]))
    node: Any = rec.meta
    for part in path[1:]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if node is None:
        return None
    return node if isinstance(node, str) else json.dumps(node, sort_keys=True)


def _make_units(ds: Dataset, pool: list[int], cfg: SplitConfig, warnings: list[str]) -> list[_Unit]:
    if cfg.group_key is None and cfg.group_pattern is None:
        return [_Unit([i]) for i in pool]
    if cfg.group_key is not None and cfg.group_pattern is not None:
        raise ConfigError("give group_key or group_pattern, not both")
    pattern = None
    if cfg.group_pattern is not None:
        try:
            pattern = re.compile(cfg.group_pattern)
        except re.error as exc:
            raise ConfigError(
                f"group_pattern {cfg.group_pattern!r}: invalid regex: {exc}"
            ) from None
    elif not (cfg.group_key in ("id", "file") or cfg.group_key.startswith("meta.")):  # type: ignore[union-attr]
        raise ConfigError(
            f"group_key {cfg.group_key!r}: expected meta.FIELD (e.g. meta.bin_id), id or file"
        )
    groups: dict[str, list[int]] = defaultdict(list)
    missing: list[int] = []
    for i in pool:
        g = _group_of(ds.records[i], cfg, pattern)
        if g is None:
            missing.append(i)
        else:
            groups[g].append(i)
    if missing:
        what = (
            f"group_pattern {cfg.group_pattern!r} does not match"
            if pattern
            else f"have no {cfg.group_key}"
        )
        first = ds.records[missing[0]].file
        msg = f"{len(missing)} image(s) {what} (first: {first}); each is its own group"
        warnings.append(msg)
        log.warning(msg)
    units = [_Unit(groups[g]) for g in sorted(groups)]
    units += [_Unit([i]) for i in missing]
    return units


def _set_keys(ds: Dataset, units: list[_Unit], cfg: SplitConfig) -> None:
    """Each unit's stratum, as the task stratifies (:mod:`cvpipe.data.strata`)."""
    if not cfg.stratify:
        return
    members = [[ds.records[i] for i in u.members] for u in units]
    keys = get_task(ds.task).strata().keys(members, ds.classes)
    for u, key in zip(units, keys, strict=True):
        u.key = key


# -- assignment ---------------------------------------------------------------------------
def _check_test_per_class(ds: Dataset, cfg: SplitConfig, ratios: tuple[float, ...]) -> None:
    if len(ratios) == 3:
        raise ConfigError(
            f"ratios {cfg.ratios!r} include a test share but test_per_class={cfg.test_per_class} "
            "fixes the test size; give train/val ratios only, e.g. --ratios 80/20"
        )
    if not get_task(ds.task).one_class_per_image:
        raise ConfigError(
            "test_per_class is for classify/count datasets; split detection data by --ratios 70/20/10"
        )
    if cfg.group_key or cfg.group_pattern:
        raise ConfigError(
            "test_per_class cannot be combined with group_key/group_pattern (groups have varied sizes)"
        )


def _take_test(
    ds: Dataset, units: list[_Unit], cfg: SplitConfig, rng: np.random.Generator, warnings: list[str]
) -> tuple[list[int], list[_Unit]]:
    n = cfg.test_per_class
    assert n is not None
    by_class: dict[int, list[_Unit]] = defaultdict(list)
    for u in units:
        by_class[ds.class_index(ds.records[u.members[0]])].append(u)
    classes = ds.output_classes  # what class_index indexes
    short = {
        classes[c]: len(by_class.get(c, []))
        for c in range(len(classes))
        if 0 < len(by_class.get(c, [])) <= n
    }
    if short:
        listing = ", ".join(f"{c!r} has {k}" for c, k in short.items())
        most = min(short.values()) - 1
        fix = (
            f"use --test-per-class {most} or fewer"
            if most >= 1
            else "leave those classes out (cvpipe import --classes) or split by --ratios 70/20/10 instead"
        )
        raise DatasetError(
            f"test_per_class={n} needs more than {n} unassigned images in every class "
            f"(some must stay for training): {listing}; {fix}"
        )
    for c in range(len(classes)):
        if c not in by_class:
            msg = f"class {classes[c]!r} has no images to split; no test images for it"
            warnings.append(msg)
            log.warning(msg)
    test: list[int] = []
    rest: list[_Unit] = []
    for c in sorted(by_class):
        group = by_class[c]
        perm = rng.permutation(len(group))
        test += [group[j].members[0] for j in perm[:n]]
        rest += [group[j] for j in sorted(perm[n:])]
    return test, rest


def _assign_strata(
    units: list[_Unit],
    ratios: tuple[float, ...],
    rng: np.random.Generator,
    every_split: bool,
    grouped: bool,
) -> dict[int, str]:
    names = SPLITS[: len(ratios)]
    strata: dict[Hashable, list[_Unit]] = defaultdict(list)
    for u in units:
        strata[u.key].append(u)
    keys = sorted(strata, key=lambda k: (str(type(k)), k))
    shuffled = []
    for k in keys:
        perm = rng.permutation(len(strata[k]))
        shuffled.append([strata[k][j] for j in perm])
    out: dict[int, str] = {}
    if not grouped:
        alloc = allocate([len(s) for s in shuffled], ratios, min_one=every_split)
        for stratum, sizes in zip(shuffled, alloc, strict=True):
            pos = 0
            for s, size in enumerate(sizes):
                for u in stratum[pos : pos + size]:
                    out[u.members[0]] = names[s]
                pos += size
        return out
    for stratum in shuffled:  # whole groups, biggest first, into the split furthest below its share
        stratum.sort(key=lambda u: -len(u.members))
        total = sum(len(u.members) for u in stratum)
        have = [0] * len(ratios)
        for u in stratum:
            s = max(range(len(ratios)), key=lambda j: (total * ratios[j] - have[j], -j))
            have[s] += len(u.members)
            for i in u.members:
                out[i] = names[s]
    return out


def assign_splits(ds: Dataset, cfg: SplitConfig) -> tuple[int, list[str]]:
    """Assign ``split`` on ``ds.records`` in memory; returns (records assigned, warnings).

    Raises:
        ConfigError: bad ratios or incompatible options.
        DatasetError: existing splits without force/keep_existing; too few images for test_per_class.
    """
    ratios = parse_ratios(cfg.ratios)
    if cfg.test_per_class is not None:
        _check_test_per_class(ds, cfg, ratios)
    warnings: list[str] = []
    existing = Counter(r.split for r in ds.records if r.split is not None)
    if existing and not (cfg.keep_existing or cfg.force):
        listing = ", ".join(f"{k} {v}" for k, v in sorted(existing.items()))
        raise DatasetError(
            f"{ds.root / 'manifest.jsonl'}: {sum(existing.values())} of {len(ds)} images already have a split "
            f"({listing}); pass --force to overwrite them or --keep-existing to keep them and split only the rest"
        )
    pool = [i for i, r in enumerate(ds.records) if not (cfg.keep_existing and r.split is not None)]
    pool.sort(key=lambda i: (ds.records[i].id, ds.records[i].file))
    if not pool:
        warnings.append("every image already has a split; nothing to assign")
        return 0, warnings
    rng = np.random.default_rng(cfg.seed)
    units = _make_units(ds, pool, cfg, warnings)
    _set_keys(ds, units, cfg)
    result: dict[int, str] = {}
    if cfg.test_per_class is not None:
        test, units = _take_test(ds, units, cfg, rng, warnings)
        result.update({i: "test" for i in test})
    grouped = cfg.group_key is not None or cfg.group_pattern is not None
    every_split = get_task(ds.task).strata().every_split
    result.update(_assign_strata(units, ratios, rng, every_split, grouped))
    for i, name in result.items():
        ds.records[i].split = name
    return len(result), warnings


def _stratify_name(ds: Dataset, cfg: SplitConfig) -> str:
    if not cfg.stratify:
        return "none"
    return get_task(ds.task).strata().name


def summarize(ds: Dataset) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Per split: images per class (images containing each class for detect), and image totals."""
    present = {r.split for r in ds.records}
    names = [s for s in SPLITS if s in present] + sorted(
        str(s) for s in present if s not in SPLITS and s is not None
    )
    if None in present:
        names.append("none")
    counts = {s: [0] * len(ds.output_classes) for s in names}
    images = dict.fromkeys(names, 0)
    task = get_task(ds.task)
    for r in ds.records:
        s = r.split if r.split is not None else "none"
        images[s] += 1
        for c in set(task.record_classes(r, ds.classes)):
            counts[s][c] += 1
    return counts, images


def split_dataset(dataset: str | Path, cfg: SplitConfig) -> SplitResult:
    """Split the dataset directory ``dataset`` in place (its manifest and dataset.yaml).

    Args:
        dataset: a cvpipe dataset directory.
        cfg: resolved :class:`SplitConfig`.

    Returns:
        A :class:`SplitResult` with per-class counts per split.

    Raises:
        ConfigError, DatasetError: see :func:`assign_splits`.
    """
    ds = Dataset.load(dataset)
    assigned, warnings = assign_splits(ds, cfg)
    ratios = parse_ratios(cfg.ratios)
    names = ("train", "val") if cfg.test_per_class else SPLITS[: len(ratios)]
    ratio_map = dict(zip(names, ratios, strict=False))
    group = cfg.group_key or (f"pattern:{cfg.group_pattern}" if cfg.group_pattern else None)
    split_info = {
        "seed": cfg.seed,
        "ratios": ratio_map,
        "test_per_class": cfg.test_per_class,
        "stratify": _stratify_name(ds, cfg),
        "group_key": group,
        "kept_existing": cfg.keep_existing,
    }
    line = f"split ratios={cfg.ratios} seed={cfg.seed}"
    if cfg.test_per_class:
        line += f" test_per_class={cfg.test_per_class}"
    if group:
        line += f" group={group}"
    if cfg.keep_existing:
        line += " keep_existing"
    ds.info = ds.info.model_copy(update={"split": split_info, "history": [*ds.info.history, line]})
    ds.save()
    counts, images = summarize(ds)
    log.debug("split %d images of %s: %s", assigned, ds.root, images)
    return SplitResult(
        ds.root, ds.task, list(ds.output_classes), ratio_map, counts, images, assigned, warnings
    )


def split(dataset: str | Path, **options: Any) -> SplitResult:
    """``cvpipe split``: assign train/val/test in the manifest of ``dataset``.

    Args:
        dataset: a cvpipe dataset directory (its manifest is rewritten atomically).
        **options: fields of :class:`SplitConfig` (``ratios``, ``seed``, ``test_per_class``,
            ``stratify``, ``group_key``, ``group_pattern``, ``keep_existing``, ``force``).

    Returns:
        :class:`SplitResult`.

    Raises:
        ConfigError: unknown option, bad ratios, incompatible options.
        DatasetError: existing splits (without force/keep_existing), too few images.

    Example:
        >>> split("datasets/bins", ratios="80/20", test_per_class=100, seed=1)  # doctest: +SKIP
    """
    return split_dataset(dataset, load_config(SplitConfig, values=options))
