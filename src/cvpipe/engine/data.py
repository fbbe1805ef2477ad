"""Training data for classify/count runs: image loaders, or cached features.

:func:`build_data` makes the loaders of a run's splits
(:func:`~cvpipe.engine.train_data.resolve_splits`): image loaders (decode → augment) or,
with a frozen backbone and the feature cache on, loaders over cached backbone features or
last-n stem activations (:mod:`cvpipe.engine.cached_data`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader

from cvpipe.data.datasets import (
    EpochSampler,
    ImageDataset,
    collate_skip,
)
from cvpipe.data.manifest import Dataset
from cvpipe.data.transforms import draft_size, eval_transform, train_transform
from cvpipe.engine import distributed as D
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.train_data import (
    Splits,
    TrainData,
    class_weights,
    default_workers,
    epoch_sampler,
    per_rank_batch,
)

log = logging.getLogger(__name__)


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
        weight=class_weights(ds, config, targets), label_smoothing=config.label_smoothing
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
    bs = per_rank_batch(config, dctx)
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
    sampler = epoch_sampler(config, targets, len(ds.output_classes), dctx)
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
