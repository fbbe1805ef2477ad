"""Detector training from cached trunk feature maps (``freeze: frozen``).

With ``freeze: frozen`` a detector's trunk (the ImageNet classifier inside it, see
:mod:`cvpipe.models.detection_split`) is a fixed function of the resized image, so every
epoch would recompute the same maps. :func:`build_cached_detection_data` runs it once per
image through the classifier's feature cache (:func:`cvpipe.engine.features.cached_features`:
same key — model, trunk weights digest, preprocessing, variants, dtype, records —, same
fp16 memory-mapped storage under ``$CVPIPE_HOME/features``, same atomic temp-dir rename,
same thread budget), one ``[variants, N, C, H, W]`` array per map. Each image is decoded
as the uncached loader does (JPEG draft at the input size), turned into floats, then
normalised and resized to ``S`` × ``S`` by the detector's own transform; with
``detector.augment.hflip`` its mirror image is the second variant.

Training then runs only the neck (extra layers / FPN), the head and the SSD loss
(:class:`CachedDetector`, :func:`~cvpipe.models.detection_split.forward_from_trunk`) on
batches of maps (:class:`MapLoader`): each epoch picks one variant per image at random
(seeded), and the boxes of a flipped variant are mirrored (``x1 → S − x2``). Boxes are
given in ``S`` × ``S`` input pixels, for training and validation alike (IoU, hence mAP, is
unchanged by the per-axis scaling). Photometric distortion, zoom-out, IoU crops and scale
jitter change the trunk's input and cannot be cached: they are left out, with a warning
(set ``feature_cache: off`` to train with them on a frozen trunk).

Memory: ssdlite320_mobilenet_v2 stores C4 (576 × 20 × 20) and C5 (1280 × 10 × 10) per image
and variant, 0.7 MB in float16; ssd512_resnet50 3 MB.

Example:
    >>> data = build_cached_detection_data(ds, splits, config, det, device, workers=0)  # doctest: +SKIP
    >>> model = CachedDetector(det); losses = model(*next(iter(data.train_loader))[:2])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cvpipe.data.datasets import EpochSampler
from cvpipe.data.manifest import Dataset
from cvpipe.engine.features import (
    FeatureRequest,
    FeatureSet,
    FeatureSource,
    cached_features,
    variant_batches,
)
from cvpipe.errors import ConfigError, DatasetError
from cvpipe.models.detection_split import forward_from_trunk, trunk_shapes

log = logging.getLogger(__name__)


class TrunkInput:
    """PIL image → ``[3, S, S]``: what the detector feeds its trunk (picklable).

    ``detection_eval_transform`` (floats in 0..1), then the detector transform's own
    normalisation and resize, exactly as ``detector(images)`` does.
    """

    def __init__(self, det: Any) -> None:
        from cvpipe.data.detection_transforms import detection_eval_transform

        self.to_tensor = detection_eval_transform()
        self.transform = det.model.transform

    def __call__(self, im: Any) -> Tensor:
        empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
        x, _ = self.to_tensor(im, empty)
        with torch.no_grad():
            x = self.transform.normalize(x)
            x, _ = self.transform.resize(x, None)
        return x


def trunk_source(det: Any) -> FeatureSource:
    """The :class:`FeatureSource` of a detector's trunk (its cache key's model part).

    Raises:
        ConfigError: the detector has no trunk / neck split (not an SSD-family model).
    """
    split = det.backbone_split()
    if split is None:
        raise ConfigError(
            f"{det.name}: freeze: frozen needs an SSD-family detector (a fixed-size input with "
            "a trunk / neck split); freeze layers with freeze_pattern instead"
        )
    size = int(det.input_size)
    t = det.model.transform
    pre = {
        "kind": "detector-trunk",
        "input_size": size,
        "decode_draft": size,
        "mean": [float(v) for v in t.image_mean],
        "std": [float(v) for v in t.image_std],
        "resize": "square-bilinear",
    }
    shapes = tuple(trunk_shapes(split.trunk, size))
    return FeatureSource(f"{det.name}:trunk", split.trunk, TrunkInput(det), pre, shapes)


@dataclass
class MapBatch:
    """A batch of trunk maps, ``[B, C, H, W]`` per map; ``len`` is the image count."""

    maps: list[Tensor]

    def __len__(self) -> int:
        return int(self.maps[0].shape[0])

    def to(self, device: torch.device) -> MapBatch:
        nb = device.type == "cuda"
        return MapBatch([m.to(device, non_blocking=nb) for m in self.maps])


def flip_boxes(boxes: Tensor, width: float) -> Tensor:
    """Boxes of the horizontally mirrored image: ``x1 → W − x2``, ``x2 → W − x1``."""
    out = boxes.clone()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


class MapLoader:
    """Batches ``(MapBatch, targets, [])`` of cached trunk maps.

    Args:
        maps: the cached ``[V, N, C, H, W]`` arrays (memory-mapped; rows are read per batch).
        boxes, labels: per record, boxes in ``S`` × ``S`` input pixels and dataset labels.
        positions: rows to use (readable images).
        sampler: an :class:`EpochSampler` over ``positions``; each sample's seed picks
            its variant (``hflip`` mirrors the boxes).
        batch_size: images per batch.
        size: the input side ``S``.
        variants: the cached variants, in order.
        variant: force this variant (validation: 0, the unflipped image).
    """

    def __init__(
        self,
        maps: Sequence[np.ndarray],
        boxes: Sequence[Tensor],
        labels: Sequence[Tensor],
        positions: Sequence[int],
        sampler: EpochSampler,
        batch_size: int,
        size: int,
        variants: Sequence[str],
        variant: int | None = None,
    ) -> None:
        self.maps, self.boxes, self.labels = list(maps), list(boxes), list(labels)
        self.positions = np.asarray(positions, dtype=np.int64)
        self.sampler, self.batch_size, self.size = sampler, batch_size, size
        self.variants, self.variant = tuple(variants), variant

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[MapBatch, list[dict[str, Tensor]], list[Any]]]:
        batches = variant_batches(
            self.sampler, self.positions, self.batch_size, len(self.variants), self.variant
        )
        for rows, var in batches:
            maps = [torch.from_numpy(np.asarray(m[var, rows], dtype=np.float32)) for m in self.maps]
            targets = []
            for r, v in zip(rows.tolist(), var.tolist(), strict=True):
                b = self.boxes[r]
                if self.variants[v] == "hflip" and b.numel():
                    b = flip_boxes(b, float(self.size))
                targets.append({"boxes": b, "labels": self.labels[r]})
            yield MapBatch(maps), targets, []


class CachedDetector(nn.Module):
    """A :class:`~cvpipe.models.detector.Detector` driven from cached trunk maps.

    ``model(MapBatch, targets)`` gives the weighted losses in training mode, detections in
    ``S`` × ``S`` input pixels in eval mode. Parameters are the detector's own (the trunk's
    stay frozen), so checkpoints save the detector as usual.
    """

    def __init__(self, det: nn.Module) -> None:
        super().__init__()
        self.det = det

    def forward(self, images: MapBatch, targets: list[dict[str, Tensor]] | None = None) -> Any:
        return forward_from_trunk(self.det, images.maps, targets if self.training else None)

    def train(self, mode: bool = True) -> CachedDetector:
        self.training = mode
        self.det.train(mode)
        return self

    @torch.no_grad()
    def validation_losses(
        self, images: MapBatch, targets: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Losses with BatchNorm and Dropout in eval mode (as ``Detector.validation_losses``)."""
        was = self.training
        self.train()
        for m in self.det.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.Dropout):
                m.eval()
        try:
            out = self(images, targets)
        finally:
            self.train(was)
        return dict(out)

    def set_postprocess(self, **kw: Any) -> None:
        self.det.set_postprocess(**kw)  # type: ignore[operator]

    def postprocess_settings(self) -> dict[str, float]:
        out: dict[str, float] = self.det.postprocess_settings()  # type: ignore[operator]
        return out


def uncacheable_augmentations(aug: Any) -> list[str]:
    """The ``detector.augment`` settings a trunk-map cache cannot apply."""
    out = []
    if aug.photometric:
        out.append("photometric")
    if aug.zoom_out > 1:
        out.append("zoom_out")
    if aug.iou_crop:
        out.append("iou_crop")
    if aug.scale_jitter is not None:
        out.append("scale_jitter")
    return out


def _input_boxes(records: Sequence[Any], boxes: Sequence[np.ndarray], size: int) -> list[Tensor]:
    """Cleaned boxes of each record in ``size`` × ``size`` input pixels."""
    out = []
    for rec, b in zip(records, boxes, strict=True):
        t = torch.from_numpy(np.asarray(b, dtype=np.float32).reshape(-1, 4).copy())
        if t.numel():
            if rec.width <= 0 or rec.height <= 0:
                raise DatasetError(
                    f"record {rec.id!r} ({rec.file}) has no width/height; run 'cvpipe validate "
                    "--fix' or re-import so that image sizes are recorded"
                )
            t = t * torch.tensor([size / rec.width, size / rec.height] * 2)
        out.append(t)
    return out


def build_cached_detection_data(
    ds: Dataset,
    splits: Any,
    config: Any,
    det: Any,
    device: torch.device,
    *,
    workers: int,
    pack: Any = None,
    report_skipped: Any = None,
) -> Any:
    """:class:`~cvpipe.engine.detection.DetectionData` over cached trunk maps.

    Args:
        ds: the detect dataset.
        splits: ``.train`` and ``.val`` records.
        config: the :class:`~cvpipe.engine.config.TrainConfig` (``batch_size``, ``seed``,
            ``detector.augment``, ``feature_cache_*``, ``feature_backend``).
        det: the detector, trunk frozen.
        device: where the trunk runs for the feature pass.
        workers: DataLoader workers of the feature pass (an upper bound on CPU).
        pack: an optional :class:`~cvpipe.data.pack.PackReader`.
        report_skipped: called with the unreadable images met.
    """
    from cvpipe.engine.detection import DetectionData, check_ground_truth

    n = len(ds.classes)
    tr = check_ground_truth(ds, splits.train, n, "train")
    va = check_ground_truth(ds, splits.val, n, "val")
    negatives = sum(1 for b in tr.boxes if len(b) == 0)
    aug = config.detector.augment
    left_out = uncacheable_augmentations(aug)
    if left_out:
        log.warning(
            "feature cache: %s change the trunk's input and cannot be cached; they are not "
            "applied, only the image%s is used (set feature_cache: off to train with them)",
            ", ".join(left_out),
            " and its horizontal flip" if aug.hflip else "",
        )
    source = trunk_source(det)
    variants = ("base", "hflip") if aug.hflip else ("base",)
    size = int(det.input_size)
    req = FeatureRequest(
        variants=variants, dtype=config.feature_cache_dtype, cache_dir=config.feature_cache_dir,
        batch_size=max(config.batch_size, 32), workers=workers, device=str(device),
        draft=size, pack=pack, backend=config.feature_backend,
    )  # fmt: skip
    sets: dict[str, FeatureSet] = {
        "train": cached_features(source, ds, splits.train, req),
        "val": cached_features(
            source, ds, splits.val, dataclasses.replace(req, variants=("base",))
        ),
    }
    for fs in sets.values():
        if report_skipped is not None:
            report_skipped(fs.skipped)
    status = "hit" if all(fs.status == "hit" for fs in sets.values()) else "miss"
    pos_tr = np.flatnonzero(sets["train"].valid).tolist()
    pos_va = np.flatnonzero(sets["val"].valid).tolist()
    if not pos_tr or not pos_va:
        raise DatasetError(
            f"{ds.root}: no readable images in the train or val split; run 'cvpipe validate'"
        )
    bs = config.batch_size
    sampler = EpochSampler(len(pos_tr), seed=config.seed)
    train_loader = MapLoader(
        sets["train"].maps, _input_boxes(splits.train, tr.boxes, size),
        [torch.from_numpy(np.asarray(v, dtype=np.int64).copy()) for v in tr.labels],
        pos_tr, sampler, bs, size, variants,
    )  # fmt: skip
    val_loader = MapLoader(
        sets["val"].maps, _input_boxes(splits.val, va.boxes, size),
        [torch.from_numpy(np.asarray(v, dtype=np.int64).copy()) for v in va.labels],
        pos_va, EpochSampler(len(pos_va), shuffle=False, pad=False), bs, size, ("base",), variant=0,
    )  # fmt: skip
    mib = sum(fs.bytes() for fs in sets.values()) / 2**20
    log.info(
        "feature cache %s: %s (%d maps, %.0f MiB for %d + %d images)",
        status, sets["train"].path, len(source.shapes), mib, len(splits.train), len(splits.val),
    )  # fmt: skip
    return DetectionData(
        train_loader, val_loader, sampler, tr.problems + va.problems, negatives,
        cached=True, cache_status=status,
    )  # fmt: skip
