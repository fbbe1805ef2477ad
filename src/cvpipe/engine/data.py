"""Training data for classify/count runs: splits, loaders, loss weighting, feature cache.

:func:`resolve_splits` picks the train and val records (carving a seeded, stratified val
from train when the dataset has none) and describes them for ``dataset.lock``;
:func:`build_data` makes the loaders: image loaders (decode → augment) or, with a frozen
backbone and the feature cache on, loaders over cached backbone features.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader

from cvpipe.data.datasets import (
    EpochSampler,
    ImageDataset,
    class_balance_weights,
    collate_skip,
    stratified_carve,
)
from cvpipe.data.manifest import Dataset, Record
from cvpipe.data.transforms import draft_size, eval_transform, train_transform
from cvpipe.engine import distributed as D
from cvpipe.engine.config import TrainConfig
from cvpipe.errors import ConfigError, DatasetError
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)


@dataclass
class Splits:
    train: list[Record]
    val: list[Record]
    carved: bool


def resolve_splits(
    ds: Dataset, config: TrainConfig, lock: dict[str, Any] | None = None
) -> tuple[Splits, dict[str, Any]]:
    """Train and val records, and the ``dataset.lock`` describing them.

    Args:
        ds: the dataset.
        config: uses ``train_split``, ``val_split``, ``val_fraction``, ``seed``.
        lock: a previous run's lock (resume): its record ids are reused.

    Raises:
        DatasetError: empty train split, or (resume) a dataset changed since the run began.
    """
    digest = ds.manifest_hash()
    if lock is not None:
        if lock.get("manifest_sha256") != digest:
            raise DatasetError(
                f"{ds.root}: the dataset changed since this run started (manifest hash differs from "
                "dataset.lock); resume with the same dataset, or start a new run"
            )
        by_id = {r.id: r for r in ds.records}
        splits = Splits(
            [by_id[i] for i in lock["splits"]["train"]],
            [by_id[i] for i in lock["splits"]["val"]],
            bool(lock.get("val_carved")),
        )
        return splits, lock
    train = ds.split_records(config.train_split)
    if not train and all(r.split is None for r in ds.records):
        log.warning(
            "%s has no splits; training on all records and carving val from them (run 'cvpipe split' first to keep a test set)",
            ds.root,
        )
        train = list(ds.records)
    if not train:
        raise DatasetError(
            f"{ds.root}: no records in split {config.train_split!r}; splits present: {ds.splits()}"
        )
    val = ds.split_records(config.val_split)
    carved = not val
    if carved:
        keep, cut = stratified_carve(_strata(ds, train), config.val_fraction, config.seed)
        train, val = [train[i] for i in keep], [train[i] for i in cut]
        log.info(
            "no %r split: carved %d val images (%.0f%% of each class, seed %d) from train",
            config.val_split,
            len(val),
            100 * config.val_fraction,
            config.seed,
        )
    if not val:
        raise DatasetError(
            f"{ds.root}: cannot carve a val set from {len(train)} training images; add images or a val split"
        )
    lock = {
        "dataset": str(ds.root.resolve()),
        "manifest_sha256": digest,
        "task": ds.task,
        "classes": ds.classes,
        "splits": {"train": [r.id for r in train], "val": [r.id for r in val]},
        "counts": {"train": len(train), "val": len(val)},
        "val_carved": carved,
        "val_fraction": config.val_fraction if carved else None,
        "seed": config.seed,
    }
    return Splits(train, val, carved), lock


def _strata(ds: Dataset, records: list[Record]) -> list[int]:
    """Stratification key of each record when carving val from train: the class the image
    stands for, as the task says for ``cvpipe split`` (its own class, or the rarest class
    among its objects; images without objects stand for none)."""
    return get_task(ds.task).strata().image_keys(records, ds.classes)


@dataclass
class TrainData:
    """Loaders and loss for one run.

    Attributes:
        train_loader / val_loader: yield ``(inputs, targets, skipped)`` batches.
        train_sampler: the :class:`EpochSampler` of the training loader.
        criterion: the training loss (class weights, label smoothing).
        cached: True when inputs come from the feature cache (pooled features, or
            activations of a ``last-n`` stem; :mod:`cvpipe.engine.cached_data`).
        cache_status: ``hit`` / ``miss`` / None.
        model: with cached inputs, the module they go through (the head, or the
            trainable tail + head); None: the whole network.
    """

    train_loader: Any
    val_loader: Any
    train_sampler: EpochSampler
    criterion: nn.Module
    cached: bool
    cache_status: str | None = None
    model: nn.Module | None = None

    def set_epoch(self, epoch: int) -> None:
        self.train_sampler.set_epoch(epoch)


def _class_weights(ds: Dataset, config: TrainConfig, targets: list[int]) -> torch.Tensor | None:
    cw = config.class_weights
    n = len(ds.output_classes)
    if cw == "none":
        return None
    if cw == "auto":
        weights = class_balance_weights(targets, n)
    elif cw == "dataset":
        if not ds.info.class_weights:
            raise ConfigError(
                f"class_weights: dataset: {ds.root}/dataset.yaml has no class_weights (write them with 'cvpipe balance --weights', or use auto)"
            )
        weights = list(ds.info.class_weights)
    else:
        weights = list(cw)
    if len(weights) != n:
        raise ConfigError(f"class_weights: {len(weights)} values for {n} classes {ds.output_classes}")
    return torch.tensor(weights, dtype=torch.float32)


def _sampler(
    config: TrainConfig, targets: list[int], n_classes: int, dctx: D.DistContext
) -> EpochSampler:
    weights = None
    if config.sampler == "weighted":
        counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=n_classes)
        weights = [1.0 / counts[t] for t in targets]
    return EpochSampler(
        len(targets),
        seed=config.seed,
        weights=weights,
        num_replicas=dctx.world_size,
        rank=dctx.rank,
    )


def _per_rank_batch(config: TrainConfig, dctx: D.DistContext) -> int:
    if config.batch_size % dctx.world_size:
        log.warning(
            "batch_size %d is not divisible by %d processes; using %d per process",
            config.batch_size,
            dctx.world_size,
            config.batch_size // dctx.world_size,
        )
    return max(1, config.batch_size // dctx.world_size)


def default_workers(world_size: int = 1) -> int:
    """min(4, CPUs per process)."""
    return min(4, max(1, (os.cpu_count() or 1) // world_size))


class TrainBatches(BatchSampler):
    """Training batches of ``sampler``, leaving out a last batch of a single sample.

    BatchNorm cannot normalise one sample once the feature maps are 1x1 (torch raises in
    the middle of the epoch), and one image is a poor gradient step anyway; the sample
    comes back in a later epoch (the sampler shuffles). Other short last batches stay.
    """

    def __init__(self, sampler: Any, batch_size: int) -> None:
        super().__init__(sampler, batch_size, drop_last=False)

    def __iter__(self) -> Iterator[list[Any]]:
        for batch in super().__iter__():
            if len(batch) == 1 and self.batch_size > 1:
                continue
            yield batch

    def __len__(self) -> int:
        n, k = len(self.sampler), self.batch_size  # type: ignore[arg-type]
        return n // k + (1 if n % k > 1 else 0)


def _suggest_pack(ds: Dataset, train: list[Any], draft: int, epochs: int) -> None:
    """Say once when a pack would make this run's epochs several times faster.

    Decoding large JPEGs every epoch is bounded by entropy decoding, which a reduced-size
    (draft) decode does not skip; a pack decodes each image once.
    """
    sides = sorted(min(r.width, r.height) for r in train if r.width > 0 and r.height > 0)
    if epochs < 3 or not sides or sides[len(sides) // 2] < 2 * draft:
        return
    log.info(
        "training images are large (median shorter side %d px) and every epoch decodes them: "
        "`cvpipe pack %s --size %d --out PACK` once, then `--set pack=PACK`, usually makes "
        "epochs several times faster (benchmarks/loader_speed.py)",
        sides[len(sides) // 2],
        ds.root,
        draft,
    )


def build_data(
    ds: Dataset,
    splits: Splits,
    net: Any,
    config: TrainConfig,
    device: torch.device,
    dctx: D.DistContext,
    amp_dtype: torch.dtype | None,
    report_skipped: Callable[[list[Any]], None],
) -> TrainData:
    """Loaders over images, or over cached features / activations (frozen, last-n)."""
    pack = None
    if config.pack:
        from cvpipe.data.pack import PackReader

        pack = PackReader.open(config.pack)
        log.info(
            "reading pixels from pack %s (%.0f%% of train records packed)",
            config.pack,
            100 * pack.coverage(splits.train),
        )
    workers = config.workers if config.workers is not None else default_workers(dctx.world_size)
    targets = [ds.class_index(r) for r in splits.train]
    criterion = nn.CrossEntropyLoss(
        weight=_class_weights(ds, config, targets), label_smoothing=config.label_smoothing
    ).to(device)
    if config.use_feature_cache or config.use_activation_cache:
        from cvpipe.engine.cached_data import CacheContext, activation_data, feature_data

        ctx = CacheContext(
            ds, splits, config, device, dctx, amp_dtype, report_skipped, pack, workers, criterion
        )
        if config.use_feature_cache:
            return feature_data(ctx, net)
        cached = activation_data(ctx, net)
        if cached is not None:
            return cached
    bs = _per_rank_batch(config, dctx)
    pre = net.preprocess
    draft = draft_size(pre, config.augment)
    if pack is None and dctx.is_main:
        _suggest_pack(ds, splits.train, draft, config.epochs)
    train_ds = ImageDataset(
        ds,
        splits.train,
        train_transform(pre, config.augment),
        draft=draft,
        pack=pack,
        on_error=config.on_error,
    )
    val_ds = ImageDataset(
        ds,
        splits.val,
        eval_transform(pre),
        draft=draft_size(pre),
        pack=pack,
        on_error=config.on_error,
    )
    sampler = _sampler(config, targets, len(ds.output_classes), dctx)
    val_sampler = EpochSampler(
        len(val_ds), shuffle=False, num_replicas=dctx.world_size, rank=dctx.rank, pad=False
    )
    common: dict[str, Any] = {
        "num_workers": workers,
        "collate_fn": collate_skip,
        "pin_memory": device.type == "cuda",
        "persistent_workers": workers > 0,
    }
    # own generators: iterating a loader must not draw from torch's global generator
    # (that would shift dropout masks between in-process and worker loading, or on resume)
    train_loader = DataLoader(
        train_ds,
        batch_sampler=TrainBatches(sampler, bs),
        generator=torch.Generator().manual_seed(config.seed),
        **common,
    )
    val_loader = DataLoader(
        val_ds,
        batch_size=bs,
        sampler=val_sampler,
        generator=torch.Generator().manual_seed(config.seed),
        **common,
    )
    return TrainData(train_loader, val_loader, sampler, criterion, cached=False)
