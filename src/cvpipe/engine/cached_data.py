"""Training data from the feature cache: pooled features or activations at a cut.

Two kinds of run train on what a fixed part of the network computed once per image
(:func:`cvpipe.engine.features.cached_features`) instead of on decoded images:

- ``freeze: frozen`` (feature cache ``auto``/``on``): the whole backbone is fixed; the
  head trains on its pooled features ``[D]`` (:func:`feature_data`).
- ``freeze: last-n`` with ``feature_cache: on`` (or ``auto`` with cacheable
  augmentation, the default): the backbone is cut before its last
  ``last_n`` stages (:func:`cvpipe.models.cut.cut_backbone`); the frozen stem's
  activations ``[C, h, w]`` are cached (fp16 by default, memory-mapped) and the last
  stages + head train on them (:func:`activation_data`). The tail's BatchNorms see the
  same inputs as on images, so a batch gives the same loss as the uncached path (up to
  the storage dtype). Activations are much bigger than pooled features (EfficientNet-Lite0
  at 224 px cut before its last 3 stages: 112x14x14 values, 44 KB per image and variant in
  fp16, against 2.5 KB pooled); above ``feature_cache_max_mb`` the run trains from images
  instead, with the estimated size logged.

Both cache the base image and, with ``augment.hflip``, its mirror image; each epoch picks
one per image (seeded). Random crops, colour jitter and TrivialAugment cannot be cached:
they are left out, with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from cvpipe.data.datasets import EpochSampler
from cvpipe.data.manifest import Dataset
from cvpipe.data.transforms import draft_size
from cvpipe.engine import distributed as D
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.features import (
    FeatureLoader,
    FeatureRequest,
    FeatureSource,
    cached_features,
    classifier_source,
)
from cvpipe.engine.train_data import Splits, TrainData, epoch_sampler, per_rank_batch
from cvpipe.errors import DatasetError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CacheContext:
    """What the cached loaders need from the run besides the source."""

    ds: Dataset
    splits: Splits
    config: TrainConfig
    device: torch.device
    dctx: D.DistContext
    amp_dtype: torch.dtype | None
    report_skipped: Callable[[list[Any]], None]
    pack: Any
    workers: int
    criterion: nn.Module


def _variants(config: TrainConfig, what: str) -> tuple[str, ...]:
    aug = config.augment
    if not aug.cacheable:
        log.warning(
            "%s: random crops, colour jitter and TrivialAugment cannot be cached and are not applied; "
            "only the base image%s is used (set feature_cache: off to train with them)",
            what,
            " and its horizontal flip" if aug.hflip else "",
        )
    return ("base", "hflip") if aug.hflip else ("base",)


def feature_data(ctx: CacheContext, net: Any) -> TrainData:
    """Head training on the frozen backbone's cached pooled features."""
    variants = _variants(ctx.config, "feature cache")
    return _loaders(ctx, classifier_source(net), net, net.head, variants, in_memory=True)


def activation_data(ctx: CacheContext, net: Any) -> TrainData | None:
    """``last-n`` fine-tuning from the frozen stem's cached activations.

    Returns:
        The :class:`TrainData` (its ``model`` is tail + head), or None when the backbone
        cannot be cut or the cache would exceed ``feature_cache_max_mb`` (logged; the
        caller then trains from images).
    """
    from cvpipe.models.cut import CutError, cut_backbone

    config = ctx.config
    try:
        cut = cut_backbone(net, config.last_n)
    except CutError as exc:  # asked for: a warning; by default (auto): for the record
        level = logging.WARNING if config.feature_cache == "on" else logging.INFO
        log.log(level, "activation cache not used, training last-n from images: %s", exc)
        return None
    source = FeatureSource(
        cut.name,
        cut.stem,
        net.preprocess.eval_transform(),
        net.preprocess.to_json(),
        (tuple(cut.shape),),
    )
    variants = _variants(config, "activation cache")
    itemsize = np.dtype(config.feature_cache_dtype).itemsize
    rows = len(variants) * len(ctx.splits.train) + len(ctx.splits.val)
    mb = rows * math.prod(source.shapes[0]) * itemsize / 2**20
    if mb > config.feature_cache_max_mb:
        log.warning(
            "activation cache not used, training last-n from images: %d images x %s activations "
            "(%s) need %.0f MB, over feature_cache_max_mb=%.0f (raise it, or use a larger last_n)",
            rows, "x".join(map(str, cut.shape)), config.feature_cache_dtype, mb,
            config.feature_cache_max_mb,
        )  # fmt: skip
        return None
    log.info(
        "activation cache: %s frozen (%d of %d stages), %s activations per image, %.0f MB",
        cut.name, cut.at, len(net.stages), "x".join(map(str, cut.shape)), mb,
    )  # fmt: skip
    model = nn.Sequential(cut.tail, net.head)
    return _loaders(ctx, source, net, model, variants, in_memory=False)


def _loaders(
    ctx: CacheContext,
    source: FeatureSource,
    net: Any,
    model: nn.Module,
    variants: tuple[str, ...],
    in_memory: bool,
) -> TrainData:
    ds, splits, config, dctx = ctx.ds, ctx.splits, ctx.config, ctx.dctx
    req = FeatureRequest(
        variants=variants, dtype=config.feature_cache_dtype, cache_dir=config.feature_cache_dir,
        batch_size=max(config.batch_size, 64), workers=ctx.workers, device=str(ctx.device),
        amp_dtype=ctx.amp_dtype, draft=draft_size(net.preprocess), pack=ctx.pack,
        backend=config.feature_backend,
    )  # fmt: skip
    sets = {}
    for first in (True, False):  # rank 0 computes, the others then read the cache
        if first == dctx.is_main:
            sets["train"] = cached_features(source, ds, splits.train, req)
            sets["val"] = cached_features(
                source, ds, splits.val, dataclasses.replace(req, variants=("base",))
            )
        D.barrier()
    for fs in sets.values():
        ctx.report_skipped(fs.skipped)
    status = "hit" if all(fs.status == "hit" for fs in sets.values()) else "miss"
    tr, va = sets["train"], sets["val"]
    pos_tr, pos_va = np.flatnonzero(tr.valid).tolist(), np.flatnonzero(va.valid).tolist()
    if not pos_tr or not pos_va:
        raise DatasetError(
            f"{ds.root}: no readable images in the train or val split; run 'cvpipe validate'"
        )
    all_targets = [ds.class_index(r) for r in splits.train]
    targets = [all_targets[i] for i in pos_tr]
    sampler = epoch_sampler(config, targets, len(ds.output_classes), dctx)
    bs = per_rank_batch(config, dctx)
    shape = source.shapes[0]
    train_loader = FeatureLoader(
        tr.features, all_targets, pos_tr, sampler, bs, shape=shape, in_memory=in_memory
    )
    val_sampler = EpochSampler(
        len(pos_va), shuffle=False, num_replicas=dctx.world_size, rank=dctx.rank, pad=False
    )
    val_targets = [ds.class_index(r) for r in splits.val]
    val_bs = max(bs, 256) if in_memory else bs
    val_loader = FeatureLoader(
        va.features, val_targets, pos_va, val_sampler, val_bs, variant=0, shape=shape,
        in_memory=in_memory,
    )  # fmt: skip
    log.info("feature cache %s: %s", status, tr.path)
    return TrainData(
        train_loader, val_loader, sampler, ctx.criterion, cached=True, cache_status=status,
        model=model,
    )  # fmt: skip
