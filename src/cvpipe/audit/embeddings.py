"""Image embeddings for the audit, read from the frozen-feature cache.

The audit does not run a backbone of its own: it asks :func:`cvpipe.engine.features.cached_features`
for the pooled features of a frozen, pretrained classifier backbone (the same cache the
trainer fills with ``freeze: frozen``, keyed by model, weights, preprocessing and records),
so a second audit, or a frozen training run on the same records and model, reads them
from disk.

Two embeddings are used. Label errors and outliers use the model's own input size
(224 px for EfficientNet-Lite0), centred on the mean and L2-normalised. Near-duplicates use
a small input (``duplicates.input_size``, 64 px) and plain L2-normalised features: at
224 px a photo and its 10x smaller copy differed more (upsampling blur) than many
different photos of the same sky; at 64 px every copy is downsampled alike. On the
weather set that raised the recall of known near-identical pairs at 0.9 precision from
0.49 to 0.84 (``benchmarks/audit_quality.py``).

Example:
    >>> emb = embed(ds, ds.records, AuditConfig())  # doctest: +SKIP
    >>> emb.vectors.shape  # doctest: +SKIP
    (1118, 1280)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvpipe.audit.config import AuditConfig
from cvpipe.data.manifest import Dataset, Record

log = logging.getLogger(__name__)


@dataclass
class Embeddings:
    """Unit-norm, centred embeddings of ``records``.

    Attributes:
        vectors: ``[N, D]`` float32; rows of unreadable images are zero.
        valid: ``[N]`` bool, False where the image could not be read.
        raw: ``[N, D]`` float32 features before centring (for class centres).
        cache: ``hit`` or ``miss``; ``key``: the feature-cache entry.
        skipped: unreadable images (file, kind, message).
    """

    vectors: np.ndarray
    valid: np.ndarray
    raw: np.ndarray
    cache: str
    key: str
    model: str
    skipped: list[dict[str, Any]] = field(default_factory=list)


def normalise(features: np.ndarray, valid: np.ndarray, centre: bool = True) -> np.ndarray:
    """Centre on the mean of the valid rows (unless ``centre`` is False) and scale every row
    to unit length.

    Example:
        >>> v = normalise(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.ones(3, bool))
        >>> np.allclose(np.linalg.norm(v, axis=1), 1)
        True
    """
    x = np.asarray(features, dtype=np.float32).copy()
    if centre and valid.any():
        x -= x[valid].mean(axis=0, keepdims=True)
    x[~valid] = 0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def embed(
    ds: Dataset, records: Sequence[Record], config: AuditConfig, input_size: int | None = None
) -> Embeddings:
    """Embeddings of ``records`` from the frozen-feature cache (computed on a miss).

    Args:
        input_size: square input side of the backbone (None: ``config.input_size``, else
            the model's own).

    Raises:
        WeightsNotFoundError: the backbone's weights are not available offline.
        UnknownNameError: unknown model name.
    """
    import torch

    from cvpipe.engine.devices import resolve_device
    from cvpipe.engine.features import FeatureRequest, cached_features
    from cvpipe.models.classification import create_classifier

    torch.manual_seed(config.seed)  # a random-init backbone (weights: none) is reproducible
    net = create_classifier(
        config.model,
        num_classes=max(2, len(ds.classes)),
        weights=config.weights,
        freeze="frozen",
        input_size=input_size or config.input_size,
    )
    device = resolve_device(config.device)
    net = net.to(device)
    req = FeatureRequest(
        variants=("base",),
        dtype="float16",
        cache_dir=config.feature_cache_dir,
        batch_size=config.batch_size,
        device=str(device),
        draft=int(net.preprocess.resize_size),
        backend=config.feature_backend,
    )
    # records with objects instead of one class are served as pixels only (target -1)
    fs = cached_features(net, ds, records, req)
    raw = np.asarray(fs.features[0], dtype=np.float32)
    valid = np.asarray(fs.valid, dtype=bool)
    log.info("audit embeddings: %s, feature cache %s (%s)", config.model, fs.status, fs.path)
    return Embeddings(
        normalise(raw, valid),
        valid,
        raw,
        fs.status,
        fs.key,
        config.model,
        [{"file": s.file, "kind": s.kind, "message": s.message} for s in fs.skipped],
    )
