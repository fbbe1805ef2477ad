"""Frozen-feature cache: run a frozen backbone once per image, train the head on the result.

With ``freeze: frozen`` the backbone is a fixed function, so every epoch would recompute
the same features. Instead :func:`cached_features` runs the backbone once per image (in
eval mode, with the deterministic eval preprocessing: resize + centre crop) and, when
horizontal flip is on, once more on the flipped image. The features go to a memory-mapped
``[variants, N, D]`` array under ``$CVPIPE_HOME/features/<key>/`` (default
``~/.cache/cvpipe/features``); the head then trains on them with huge batches and no image
decoding. Each epoch picks one variant per image at random (seeded), which is exactly the
flip augmentation of the uncached path. Random crops, colour jitter and TrivialAugment
cannot be cached; they are left out (and logged) when the cache is used.

The key is the SHA-256 of the model name, a digest of the backbone's weights, the
preprocessing, the variants, the dtype and the hash of the records used (id, file, size),
so repeated runs and tuning trials share entries. Entries are written to a temporary
directory and renamed into place: a killed feature pass never leaves a half cache.

Example:
    >>> fs = cached_features(net, ds, records, FeatureRequest(variants=("base", "hflip")))  # doctest: +SKIP
    >>> fs.status, fs.features.shape  # doctest: +SKIP
    ('miss', (2, 1000, 2048))
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cvpipe.data.datasets import EpochSampler, ImageDataset, Skipped, collate_skip
from cvpipe.data.manifest import Dataset, Record
from cvpipe.io import read_json, write_json
from cvpipe.progress import Bar

log = logging.getLogger(__name__)

VARIANTS = ("base", "hflip")


def default_cache_dir(override: str | Path | None = None) -> Path:
    """``override``, else ``$CVPIPE_HOME/features``, else ``~/.cache/cvpipe/features``."""
    if override:
        return Path(override).expanduser()
    home = os.environ.get("CVPIPE_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "cvpipe"
    return base / "features"


def state_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, dtypes, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def records_digest(records: Sequence[Record]) -> str:
    """SHA-256 of the records used, in order (id, file, width, height)."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps([r.id, r.file, r.width, r.height]).encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class FeatureRequest:
    """How to compute features.

    Attributes:
        variants: ``("base",)`` or ``("base", "hflip")``.
        dtype: storage dtype (``float16`` halves the disk and memory).
        cache_dir: cache root (see :func:`default_cache_dir`).
        batch_size: images per backbone forward.
        workers: DataLoader workers.
        device: where the backbone runs.
        amp_dtype: autocast dtype for the backbone, or None.
        draft: JPEG draft decode size.
        pack: optional :class:`~cvpipe.data.pack.PackReader`.
    """

    variants: tuple[str, ...] = ("base",)
    dtype: str = "float16"
    cache_dir: str | Path | None = None
    batch_size: int = 64
    workers: int = 0
    device: str = "cpu"
    amp_dtype: torch.dtype | None = None
    draft: int | None = None
    pack: Any = None


@dataclass
class FeatureSet:
    """Cached features of ``records``.

    Attributes:
        features: ``[V, N, D]`` array (memory-mapped), row ``i`` is ``records[i]``.
        valid: ``[N]`` bool, False for images that could not be read.
        key: cache key (directory name).
        status: ``hit`` (read from the cache) or ``miss`` (computed now).
        skipped: unreadable images met while computing (empty on a hit).
    """

    features: np.ndarray
    valid: np.ndarray
    key: str
    path: Path
    status: str
    skipped: list[Skipped]


def feature_key(
    model_name: str,
    backbone_digest: str,
    preprocess: dict[str, Any],
    records_hash: str,
    req: FeatureRequest,
) -> str:
    payload = {
        "model": model_name,
        "backbone_sha256": backbone_digest,
        "preprocess": preprocess,
        "records_sha256": records_hash,
        "variants": list(req.variants),
        "dtype": req.dtype,
        "version": 1,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cached_features(
    net: Any, dataset: Dataset, records: Sequence[Record], req: FeatureRequest
) -> FeatureSet:
    """Features of ``records`` from the cache, computing (and caching) them on a miss.

    Args:
        net: a :class:`~cvpipe.models.classification.ClassifierNet` (its ``backbone``,
            ``feature_dim``, ``preprocess`` and ``name`` are used).
        dataset: the dataset the records belong to.
        records: records in the order rows should have.
        req: :class:`FeatureRequest`.

    Returns:
        A :class:`FeatureSet`.
    """
    root = default_cache_dir(req.cache_dir)
    key = feature_key(
        net.name, state_digest(net.backbone), net.preprocess.to_json(), records_digest(records), req
    )
    final = root / key
    if (final / "meta.json").is_file():
        meta = read_json(final / "meta.json")
        feats = np.load(final / "features.npy", mmap_mode="r")
        valid = np.load(final / "valid.npy")
        log.info(
            "feature cache hit: %s (%d images x %d variants)",
            final,
            len(records),
            len(req.variants),
        )
        return FeatureSet(
            feats, valid, key, final, "hit", [Skipped(**s) for s in meta.get("skipped", [])]
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=root))
    try:
        valid, skipped = _compute(net, dataset, records, req, tmp)
        write_json(
            tmp / "meta.json",
            {
                "model": net.name,
                "images": len(records),
                "variants": list(req.variants),
                "dtype": req.dtype,
                "feature_dim": int(net.feature_dim),
                "preprocess": net.preprocess.to_json(),
                "skipped": [
                    {"record_id": s.record_id, "file": s.file, "kind": s.kind, "message": s.message}
                    for s in skipped
                ],
            },
        )
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same entry first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("feature cache miss: computed %s", final)
    feats = np.load(final / "features.npy", mmap_mode="r")
    return FeatureSet(feats, np.load(final / "valid.npy"), key, final, "miss", skipped)


@torch.no_grad()
def _compute(
    net: Any, dataset: Dataset, records: Sequence[Record], req: FeatureRequest, out: Path
) -> tuple[np.ndarray, list[Skipped]]:
    device = torch.device(req.device)
    backbone = net.backbone
    was_training = backbone.training
    backbone.eval()
    data = ImageDataset(
        dataset,
        records,
        net.preprocess.eval_transform(),
        draft=req.draft,
        pack=req.pack,
        on_error="skip",
    )
    loader = torch.utils.data.DataLoader(
        _PosDataset(data),
        batch_size=req.batch_size,
        shuffle=False,
        num_workers=req.workers,
        collate_fn=_collate_with_pos,
        pin_memory=device.type == "cuda",
    )
    n, dim = len(records), int(net.feature_dim)
    feats = np.lib.format.open_memmap(
        out / "features.npy",
        mode="w+",
        dtype=np.dtype(req.dtype),
        shape=(len(req.variants), n, dim),
    )
    valid = np.zeros(n, dtype=bool)
    skipped: list[Skipped] = []
    try:
        with Bar(total=n, desc="features", unit="img") as bar:
            for x, pos, bad in loader:
                skipped += bad
                bar.update(len(pos) + len(bad))
                if not len(pos):
                    continue
                x = x.to(device)
                for v, variant in enumerate(req.variants):
                    xv = torch.flip(x, dims=[3]) if variant == "hflip" else x
                    with torch.autocast(
                        device.type, dtype=req.amp_dtype, enabled=req.amp_dtype is not None
                    ):
                        f = backbone(xv)
                    feats[v, pos.numpy()] = (
                        f.float().reshape(f.shape[0], -1).cpu().numpy().astype(req.dtype)
                    )
                valid[pos.numpy()] = True
    finally:
        backbone.train(was_training)
    feats.flush()
    del feats
    np.save(out / "valid.npy", valid)
    return valid, skipped


class _PosDataset(torch.utils.data.Dataset):
    def __init__(self, inner: ImageDataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> Any:
        item = self.inner[i]
        return item if isinstance(item, Skipped) else (item[0], i)


def _collate_with_pos(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[Skipped]]:
    return collate_skip(batch)


class FeatureLoader:
    """Batches of cached features: ``(features [B, D] float32, targets [B], [])``.

    Args:
        features: ``[V, N, D]`` cached features.
        targets: ``[N]`` class indices.
        positions: rows to use (readable images).
        sampler: an :class:`~cvpipe.data.datasets.EpochSampler` over ``positions``; each
            sample's seed picks its variant (so flips are random per epoch, reproducibly).
        batch_size: rows per batch.
        variant: force this variant (validation uses 0, the unflipped image).
    """

    def __init__(
        self,
        features: np.ndarray,
        targets: Sequence[int],
        positions: Sequence[int],
        sampler: EpochSampler,
        batch_size: int,
        variant: int | None = None,
    ) -> None:
        self.features = torch.from_numpy(
            np.array(features, dtype=np.float32)
        )  # a private, writable copy in RAM
        self.targets = torch.as_tensor(list(targets), dtype=torch.long)
        self.positions = torch.as_tensor(list(positions), dtype=torch.long)
        self.sampler = sampler
        self.batch_size = batch_size
        self.variant = variant

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[Skipped]]]:
        pairs = list(self.sampler)
        nv = self.features.shape[0]
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            rows = self.positions[torch.as_tensor([i for i, _ in chunk], dtype=torch.long)]
            if self.variant is not None:
                var = torch.full((len(chunk),), self.variant, dtype=torch.long)
            else:
                var = torch.as_tensor([s % nv for _, s in chunk], dtype=torch.long)
            yield self.features[var, rows], self.targets[rows], []
