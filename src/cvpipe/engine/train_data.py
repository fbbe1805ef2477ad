"""What every training data pipeline of a run shares, image loaders or caches alike.

- :func:`resolve_splits`: the train and val records (carving a seeded val stratified as
  the task says when the dataset has none) and the ``dataset.lock`` describing them;
- :class:`TrainData`: the loaders, sampler and loss a run trains with;
- the loss's class weights, the epoch sampler (random or inverse-frequency weighted,
  sharded over processes), the per-process batch size and the default worker count.

:mod:`cvpipe.engine.data` builds image loaders from these, :mod:`cvpipe.engine.cached_data`
loaders over cached features.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cvpipe.data.datasets import EpochSampler, class_balance_weights, stratified_carve
from cvpipe.data.manifest import Dataset, Record
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


def class_weights(ds: Dataset, config: TrainConfig, targets: list[int]) -> torch.Tensor | None:
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
        raise ConfigError(
            f"class_weights: {len(weights)} values for {n} classes {ds.output_classes}"
        )
    return torch.tensor(weights, dtype=torch.float32)


def epoch_sampler(
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


def per_rank_batch(config: TrainConfig, dctx: D.DistContext) -> int:
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
