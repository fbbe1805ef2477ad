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

Detectors use the same machinery with several outputs (:class:`FeatureSource`): a frozen
detector trunk's feature maps are stored one ``[variants, N, C, H, W]`` array per map
(``features.npy``, ``features_1.npy``, ...), see :mod:`cvpipe.engine.detect_cache`.

The key is the SHA-256 of the model name, a digest of the backbone's weights, the
preprocessing, the variants, the dtype and the hash of the records used (id, file, size),
so repeated runs and tuning trials share entries. Entries are written to a temporary
directory and renamed into place: a killed feature pass never leaves a half cache.

The pass runs under ``torch.inference_mode`` with the backbone in eval mode and
channels_last; images are decoded in DataLoader workers and the backbone runs in the main
process, with workers + compute threads kept within the thread budget
(:func:`feature_threads`). On CPU the backbone can run in ONNX Runtime instead
(``FeatureRequest.backend`` / ``feature_backend`` in the train config; the backends and
how ``auto`` picks one: :mod:`cvpipe.engine.feature_backends`).

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cvpipe.data.datasets import EpochSampler, ImageDataset, Skipped, collate_skip
from cvpipe.data.manifest import Dataset, Record
from cvpipe.engine.feature_backends import (
    BACKENDS,
    FeatureBackendError,
    Graph,
    Runner,
    TorchRunner,
    _is_channels_last,
    pick_runner,
)
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
    """SHA-256 of the records used, in order (id, file, width, height, and the EXIF
    orientation a decode applies when there is one)."""
    h = hashlib.sha256()
    for r in records:
        turn = [r.orientation] if r.orientation is not None else []
        h.update(json.dumps([r.id, r.file, r.width, r.height, *turn]).encode())
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
        workers: DataLoader workers (an upper bound on CPU, see :func:`feature_threads`).
        device: where the backbone runs.
        amp_dtype: autocast dtype for the backbone, or None.
        draft: JPEG draft decode size.
        pack: optional :class:`~cvpipe.data.pack.PackReader`.
        backend: ``auto``, ``torch`` or ``onnxruntime`` (see the module docstring).
        threads: compute threads (None: see :func:`feature_threads`).
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
    backend: str = "auto"
    threads: int | None = None


@dataclass(frozen=True)
class FeatureSource:
    """What a feature pass runs, for any frozen network part.

    Attributes:
        name: model name (part of the key).
        module: the frozen part, ``[B, 3, H, W]`` → a tensor (flattened to ``[B, D]``) or
            a list of tensors (one stored array each).
        transform: PIL image → ``[3, H, W]`` tensor, deterministic, one size for all.
        preprocess: JSON description of ``transform`` (part of the key).
        shapes: shape of each output without the batch dimension (``((D,),)`` for a
            classifier, ``((C, H, W), ...)`` for detector maps).
    """

    name: str
    module: nn.Module
    transform: Callable[[Any], torch.Tensor]
    preprocess: dict[str, Any]
    shapes: tuple[tuple[int, ...], ...]


def classifier_source(net: Any) -> FeatureSource:
    """The :class:`FeatureSource` of a classifier's backbone (eval preprocessing)."""
    return FeatureSource(
        net.name,
        net.backbone,
        net.preprocess.eval_transform(),
        net.preprocess.to_json(),
        ((int(net.feature_dim),),),
    )


def _array_name(i: int) -> str:
    return "features.npy" if i == 0 else f"features_{i}.npy"


@dataclass
class FeatureSet:
    """Cached features of ``records``.

    Attributes:
        features: ``[V, N, D]`` array (memory-mapped), row ``i`` is ``records[i]``
            (the first output's array: ``maps[0]``).
        valid: ``[N]`` bool, False for images that could not be read.
        key: cache key (directory name).
        status: ``hit`` (read from the cache) or ``miss`` (computed now).
        skipped: unreadable images met while computing (empty on a hit).
        maps: every output's ``[V, N, *shape]`` array (memory-mapped), in order.
    """

    features: np.ndarray
    valid: np.ndarray
    key: str
    path: Path
    status: str
    skipped: list[Skipped]
    maps: list[np.ndarray] = field(default_factory=list)

    def bytes(self) -> int:
        """Bytes the stored arrays take."""
        return int(sum(m.nbytes for m in self.maps or [self.features]))


def _load_set(
    final: Path, outputs: int, key: str, status: str, skipped: list[Skipped]
) -> FeatureSet:
    maps = [np.load(final / _array_name(i), mmap_mode="r") for i in range(outputs)]
    return FeatureSet(maps[0], np.load(final / "valid.npy"), key, final, status, skipped, maps)


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
            ``feature_dim``, ``preprocess`` and ``name`` are used) or a
            :class:`FeatureSource` (a detector's trunk maps, or the frozen stem of a
            ``last-n`` cut, :func:`cvpipe.models.cut.cut_backbone`).
        dataset: the dataset the records belong to.
        records: records in the order rows should have.
        req: :class:`FeatureRequest`.

    Returns:
        A :class:`FeatureSet`.
    """
    root = default_cache_dir(req.cache_dir)
    if req.backend not in BACKENDS:
        raise FeatureBackendError(
            f"unknown feature backend {req.backend!r}; valid: {', '.join(BACKENDS)}"
        )
    src = net if isinstance(net, FeatureSource) else classifier_source(net)
    digest = state_digest(src.module)
    key = feature_key(src.name, digest, src.preprocess, records_digest(records), req)
    final = root / key
    outputs = len(src.shapes)
    if (final / "meta.json").is_file():
        meta = read_json(final / "meta.json")
        log.info(
            "feature cache hit: %s (%d images x %d variants)",
            final,
            len(records),
            len(req.variants),
        )
        return _load_set(
            final, outputs, key, "hit", [Skipped(**s) for s in meta.get("skipped", [])]
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=root))
    try:
        valid, skipped, backend = _compute(src, dataset, records, req, tmp, backbone_digest=digest)
        write_json(
            tmp / "meta.json",
            {
                "model": src.name,
                "images": len(records),
                "variants": list(req.variants),
                "dtype": req.dtype,
                "backend": backend,
                "feature_dim": int(np.prod(src.shapes[0])),
                "shapes": [list(s) for s in src.shapes],
                "preprocess": src.preprocess,
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
    return _load_set(final, outputs, key, "miss", skipped)


def feature_threads(
    workers: int, device: torch.device, threads: int | None = None
) -> tuple[int, int]:
    """DataLoader workers and compute threads for a feature pass.

    Images are decoded in workers and the backbone runs in the main process. On a GPU the
    requested ``workers`` are kept. On CPU the backbone is the bottleneck (tens of ms per
    image at 224 px against a few ms to draft-decode even a large photo), so below a budget
    (``torch.get_num_threads()``, which the tuner and DDP launcher lower per process) of
    4 threads the main process decodes and every thread runs the backbone; from 4 threads
    on, one worker per 8 threads decodes ahead and the backbone gets the rest. Workers and
    compute threads never add up to more than the budget (oversubscribed OpenMP threads
    were 2-3x slower on a loaded 2-core machine). On 2 cores, a frozen Lite0 run with
    cached features took 1.8 s with (0 workers, 2 threads) against 3.4 s with (1, 1) on
    100 demo images, and 2.0 s against 3.2 s on 60 photos of 1000-3000 px.

    Args:
        workers: the DataLoader workers asked for (an upper bound on CPU).
        device: where the backbone runs.
        threads: compute threads to use instead of the budget minus workers.

    Returns:
        ``(workers, threads)``.

    Example:
        >>> feature_threads(4, torch.device("cpu"), threads=3)[1]
        3
    """
    budget = max(1, torch.get_num_threads())
    if device.type != "cpu":
        return workers, threads or budget
    w = 0 if budget < 4 else min(workers, max(1, budget // 8))
    return w, threads or max(1, budget - w)


@torch.inference_mode()
def _compute(
    src: FeatureSource,
    dataset: Dataset,
    records: Sequence[Record],
    req: FeatureRequest,
    out: Path,
    backbone_digest: str = "",
) -> tuple[np.ndarray, list[Skipped], str]:
    device = torch.device(req.device)
    workers, threads = feature_threads(req.workers, device, req.threads)
    backbone = src.module
    was_training, was_cl = backbone.training, _is_channels_last(backbone)
    old_threads = torch.get_num_threads()
    backbone.eval()
    data = ImageDataset(
        dataset,
        records,
        src.transform,
        draft=req.draft,
        pack=req.pack,
        on_error="skip",
    )
    loader = torch.utils.data.DataLoader(
        _PosDataset(data),
        batch_size=req.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate_with_pos,
        pin_memory=device.type == "cuda",
    )
    n = len(records)
    arrays = [
        np.lib.format.open_memmap(
            out / _array_name(i),
            mode="w+",
            dtype=np.dtype(req.dtype),
            shape=(len(req.variants), n, *shape),
        )
        for i, shape in enumerate(src.shapes)
    ]
    valid = np.zeros(n, dtype=bool)
    skipped: list[Skipped] = []
    graph = Graph(default_cache_dir(req.cache_dir), src.name, backbone_digest)
    run: Runner | None = None
    try:
        torch.set_num_threads(threads)
        torch_run = TorchRunner(backbone, device, req.amp_dtype, backbone_digest)
        with Bar(total=n, desc="features", unit="img") as bar:
            for x, pos, bad in loader:
                skipped += bad
                bar.update(len(pos) + len(bad))
                if not len(pos):
                    continue
                ref = None
                if run is None:
                    run, ref = pick_runner(
                        req.backend, req.amp_dtype, device, torch_run, graph, x,
                        n * len(req.variants), threads,
                    )  # fmt: skip
                rows = pos.numpy()
                for v, variant in enumerate(req.variants):
                    if variant == "hflip":
                        fs = run(torch.flip(x, dims=[3]))
                    elif ref is not None:  # the first images already went through torch
                        rest = run(x[len(ref[0]) :]) if len(x) > len(ref[0]) else None
                        fs = (
                            ref
                            if rest is None
                            else [np.concatenate(p) for p in zip(ref, rest, strict=True)]
                        )
                    else:
                        fs = run(x)
                    for arr, f in zip(arrays, fs, strict=True):
                        arr[v, rows] = f.reshape(len(rows), *arr.shape[2:]).astype(req.dtype)
                valid[rows] = True
    finally:
        torch.set_num_threads(old_threads)
        backbone.to(memory_format=torch.channels_last if was_cl else torch.contiguous_format)
        backbone.train(was_training)
    for arr in arrays:
        arr.flush()
    del arrays
    np.save(out / "valid.npy", valid)
    return valid, skipped, run.name if run is not None else "none"


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
    """Batches of cached features: ``(features [B, *shape] float32, targets [B], [])``.

    Args:
        features: ``[V, N, D]`` cached features.
        targets: ``[N]`` class indices.
        positions: rows to use (readable images).
        sampler: an :class:`~cvpipe.data.datasets.EpochSampler` over ``positions``; each
            sample's seed picks its variant (so flips are random per epoch, reproducibly).
        batch_size: rows per batch.
        variant: force this variant (validation uses 0, the unflipped image).
        shape: per-image shape the rows are reshaped to (default ``(D,)``); activations
            of a ``last-n`` stem are ``(C, h, w)``.
        in_memory: copy the rows into RAM (pooled features: small); False reads each
            batch from the memory-mapped file (activations: the page cache keeps the hot
            part, and a batch is converted to float32 only when it is used).
    """

    def __init__(
        self,
        features: np.ndarray,
        targets: Sequence[int],
        positions: Sequence[int],
        sampler: EpochSampler,
        batch_size: int,
        variant: int | None = None,
        shape: tuple[int, ...] | None = None,
        in_memory: bool = True,
    ) -> None:
        # a private, writable copy in RAM (storage dtype), or the memory-mapped file
        self.features = np.array(features) if in_memory else features
        self.shape = tuple(shape) if shape is not None else (int(features.shape[-1]),)
        self.targets = torch.as_tensor(list(targets), dtype=torch.long)
        self.positions = np.asarray(list(positions), dtype=np.int64)
        self.sampler = sampler
        self.batch_size = batch_size
        self.variant = variant

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[Skipped]]]:
        batches = variant_batches(
            self.sampler, self.positions, self.batch_size, self.features.shape[0], self.variant
        )
        for rows, var in batches:
            x = torch.from_numpy(np.asarray(self.features[var, rows], dtype=np.float32))
            yield x.reshape(len(rows), *self.shape), self.targets[torch.from_numpy(rows)], []


def variant_batches(
    sampler: Any, positions: np.ndarray, batch_size: int, variants: int, variant: int | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(rows, variants)`` index arrays of each batch of cached entries: the sampler's
    ``(index, seed)`` pairs in order, ``rows = positions[index]``, and the variant each
    sample's seed picks (``seed % variants``: flips random per epoch, reproducibly) or
    ``variant`` for all (validation uses 0, the unflipped image)."""
    pairs = list(sampler)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        rows = positions[[i for i, _ in chunk]]
        if variant is not None:
            var = np.full(len(chunk), variant, dtype=np.int64)
        else:
            var = np.asarray([s % variants for _, s in chunk], dtype=np.int64)
        yield rows, var
