"""Torch datasets and samplers over a cvpipe dataset.

:class:`ImageDataset` turns manifest records into ``(image tensor, class index)`` pairs.
It decodes JPEGs at reduced size (``draft``), reads pre-resized pixels from a pack
(:mod:`cvpipe.data.pack`) when one is given, and never lets one broken image kill a run:
with ``on_error="skip"`` a corrupt file becomes a :class:`Skipped` marker that
:func:`collate_skip` drops from the batch and hands to the trainer, which logs it, counts
it and lists it in the run's ``problems.jsonl``.

:class:`DetectionDataset` does the same for detect records, returning ``(image tensor,
{"boxes", "labels"})``; its ground truth is checked once by :func:`detection_targets`
(boxes outside the image clipped, degenerate boxes dropped, both reported as
:class:`BoxProblem`; class ids outside the model an error). Images without boxes are
negatives. :func:`collate_detection` batches them as lists.

:class:`EpochSampler` makes every epoch's order *and* every sample's augmentation a pure
function of ``(seed, epoch, position)``: it yields ``(index, sample_seed)`` pairs and
the dataset seeds torch with ``sample_seed`` before augmenting. Resumed runs, different
worker counts and DDP ranks therefore see exactly the same images and augmentations.

Example:
    >>> ds = Dataset.load("datasets/bins")  # doctest: +SKIP
    >>> data = ImageDataset(ds, ds.split_records("train"), transform, draft=256)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Sampler

from cvpipe.data.images import ImageReadError
from cvpipe.data.manifest import Dataset, Record
from cvpipe.data.problems import OnError
from cvpipe.data.transforms import RandomResizedCropTransform
from cvpipe.errors import DatasetError, DatasetFormatError

if TYPE_CHECKING:
    from cvpipe.data.pack import PackReader

log = logging.getLogger(__name__)

_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 63) - 1


def mix_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (splitmix-style; no Python ``hash``)."""
    h = 0
    for p in parts:
        h = (h ^ (int(p) + _MIX + (h << 6) + (h >> 2))) & _MASK
        h = ((h ^ (h >> 31)) * 0xBF58476D1CE4E5B9) & _MASK
    return h


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator for one sample's augmentation; restore it afterwards.

    The same random stream as ``torch.random.fork_rng(devices=[])`` +
    ``torch.manual_seed(seed)`` for CPU transforms, at a small fraction of the cost:
    ``torch.manual_seed`` also seeds every accelerator backend (about 1 ms a call, a
    third of the loading time of a small JPEG), while this only touches the CPU
    generator (a few microseconds). The caller's generator state is restored, so
    in-process loading does not shift the dropout masks of the training step.

    Args:
        seed: the sample seed (:meth:`EpochSampler.__iter__`).

    Example:
        >>> with seeded_rng(7):
        ...     a = torch.rand(2)
        >>> with seeded_rng(7):
        ...     b = torch.rand(2)
        >>> bool((a == b).all())
        True
    """
    g = torch.default_generator
    state = g.get_state()
    g.manual_seed(seed)
    try:
        yield
    finally:
        g.set_state(state)


@dataclass(frozen=True, slots=True)
class Skipped:
    """Marker returned in place of a sample whose image could not be read."""

    record_id: str
    file: str
    kind: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.record_id,
            "file": self.file,
            "kind": self.kind,
            "message": self.message,
            "action": "skipped sample",
        }


class ImageDataset(torch.utils.data.Dataset):
    """``(image, target)`` pairs for classify and count datasets.

    Args:
        dataset: the loaded cvpipe dataset (for image paths and class indices).
        records: the records to serve, in order.
        transform: PIL image → tensor (see :mod:`cvpipe.data.transforms`).
        draft: JPEG reduced-size decode: the shorter side is decoded at least this large.
            With a :class:`~cvpipe.data.transforms.RandomResizedCropTransform` the crop
            box is drawn from the record's width/height first and the decode is sized
            for that box instead (just large enough that the box keeps the output size);
            None decodes in full.
        pack: a :class:`~cvpipe.data.pack.PackReader`; packed records skip decoding.
        on_error: ``skip`` returns :class:`Skipped` for unreadable images; ``fail``
            raises :class:`DatasetFormatError`.

    Items:
        ``dataset[i]`` or ``dataset[(i, sample_seed)]`` → ``(tensor [3,S,S] float32, int)``
        or a :class:`Skipped`. With a ``sample_seed`` torch's generator is seeded first so
        random augmentation is reproducible (the same crop whatever the decode size).
    """

    def __init__(
        self,
        dataset: Dataset,
        records: Sequence[Record],
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        *,
        draft: int | None = None,
        pack: PackReader | None = None,
        on_error: OnError = "skip",
    ) -> None:
        self.dataset = dataset
        self.records = list(records)
        self.transform = transform
        self.draft = draft
        self.pack = pack
        self.on_error = on_error
        # detect records have no class label: their pixels only are served (feature pass)
        detect = dataset.task == "detect"
        self.targets = [-1 if detect else dataset.class_index(r) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def load_image(self, index: int, size: tuple[int, int] | None = None) -> Image.Image:
        """The decoded RGB image of record ``index`` (from the pack when present).

        Args:
            index: record position.
            size: JPEG draft ``(w, h)`` to decode at least; default ``(draft, draft)``.

        Raises:
            ImageReadError: missing, unreadable, truncated or corrupt file.
        """
        rec = self.records[index]
        if self.pack is not None:
            arr = self.pack.get(rec)
            if arr is not None:
                return Image.fromarray(arr, "RGB")
        if size is None and self.draft:
            size = (self.draft, self.draft)
        return self.dataset.load_image(rec, "RGB", draft=size)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int] | Skipped:
        index, sample_seed = item if isinstance(item, tuple) else (item, None)
        if sample_seed is None:
            return self._sample(index)
        # seed this sample's augmentation without disturbing the caller's generator
        # (in-process loading must not shift the dropout masks of the training step)
        with seeded_rng(sample_seed):
            return self._sample(index)

    def _sample(self, index: int) -> tuple[torch.Tensor, int] | Skipped:
        rec = self.records[index]
        planned = isinstance(self.transform, RandomResizedCropTransform) and (
            rec.width > 0 and rec.height > 0
        )
        try:
            if planned:
                # draw the crop from the header size, then decode just enough pixels for it
                rrc: RandomResizedCropTransform = self.transform  # type: ignore[assignment]
                box = rrc.box(rec.width, rec.height)
                need = rrc.decode_size(box, rec.width, rec.height) if self.draft else None
                im = self.load_image(index, need or (rec.width, rec.height))
            else:
                im = self.load_image(index)
        except ImageReadError as exc:
            if self.on_error == "fail":
                raise DatasetFormatError(
                    f"{exc.message} (set on_error: skip to skip unreadable images)", path=exc.path
                ) from None
            return Skipped(rec.id, rec.file, exc.kind, exc.message)
        if planned:
            return rrc.apply(im, box, (rec.width, rec.height)), self.targets[index]
        return self._transform(im), self.targets[index]

    def _transform(self, im: Image.Image) -> torch.Tensor:
        if self.transform is None:
            return torch.from_numpy(np.asarray(im).copy())
        return self.transform(im)


def collate_skip(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor, list[Skipped]]:
    """Stack the good samples; return the :class:`Skipped` markers alongside.

    Returns:
        ``(images [N,...], targets [N] int64, skipped)``; ``N`` may be 0 when every
        sample of the batch was unreadable.
    """
    good = [b for b in batch if not isinstance(b, Skipped)]
    skipped = [b for b in batch if isinstance(b, Skipped)]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), skipped
    xs = torch.stack([g[0] for g in good])
    ys = torch.as_tensor([g[1] for g in good], dtype=torch.long)
    return xs, ys, skipped


class EpochSampler(Sampler):
    """Seeded, shardable sampler yielding ``(index, sample_seed)``.

    Args:
        n: dataset length.
        seed: run seed.
        shuffle: random order each epoch (seeded by ``seed`` and the epoch).
        weights: per-sample weights → sampling with replacement (weighted sampler), ``n``
            draws per epoch.
        num_replicas: DDP world size; each rank gets an equal, disjoint share of the epoch
            (padded by repeating the first indices, like ``DistributedSampler``).
        rank: this process's rank.
        pad: pad shards to equal length (training); ``False`` for evaluation, where
            every item must count exactly once.

    Call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        weights: Sequence[float] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
    ) -> None:
        self.n = n
        self.seed = seed
        self.shuffle = shuffle
        self.weights = torch.as_tensor(weights, dtype=torch.double) if weights is not None else None
        self.num_replicas = num_replicas
        self.rank = rank
        self.pad = pad
        self.epoch = 0
        if pad or num_replicas == 1:
            self.per_rank = math.ceil(n / num_replicas) if n else 0
        else:
            self.per_rank = len(range(rank, n, num_replicas))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> list[int]:
        """The full (unsharded) order of this epoch."""
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, 1))
        if self.weights is not None:
            idx = torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist()
        elif self.shuffle:
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        total = self.per_rank * self.num_replicas
        if self.pad and total > len(idx) and idx:
            idx += idx[: total - len(idx)]
        return idx

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order()
        for pos in range(self.rank, len(order), self.num_replicas):
            yield order[pos], mix_seed(self.seed, self.epoch, pos, 2)

    def __len__(self) -> int:
        return self.per_rank


def stratified_carve(
    labels: Sequence[int], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split positions into (keep, carved) with ``fraction`` of each class carved out.

    Every class with at least two items gives at least one to the carved part.

    Args:
        labels: class index per item.
        fraction: share carved from each class (0 < fraction < 1).
        seed: RNG seed (the same seed gives the same split).

    Returns:
        Sorted position lists ``(keep, carved)``.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    keep: list[int] = []
    carved: list[int] = []
    for y in sorted(by_class):
        idx = np.array(by_class[y])
        rng.shuffle(idx)
        k = int(round(len(idx) * fraction))
        k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 else 0
        carved += idx[:k].tolist()
        keep += idx[k:].tolist()
    return sorted(keep), sorted(carved)


def class_balance_weights(targets: Sequence[int], num_classes: int) -> list[float]:
    """Inverse-frequency class weights normalised to mean 1 over present classes."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).astype(float)
    present = counts > 0
    w = np.zeros(num_classes)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return w.tolist()


# ----------------------------------------------------------------------------- detection
@dataclass(frozen=True, slots=True)
class BoxProblem:
    """A ground-truth box that needed fixing before training (listed in problems.jsonl).

    Attributes:
        record_id, file: the image.
        box: the box's position in the record.
        kind: ``box_outside_image`` (clipped) or ``degenerate_box`` (dropped: zero or
            negative width/height, or not finite, after clipping).
        message: what was wrong, with the numbers.
    """

    record_id: str
    file: str
    box: int
    kind: str
    message: str

    @property
    def action(self) -> str:
        return "clipped box" if self.kind == "box_outside_image" else "dropped box"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.record_id, "file": self.file, "box": self.box, "kind": self.kind,
            "message": self.message, "action": self.action,
        }  # fmt: skip


@dataclass(frozen=True)
class DetectionTargets:
    """Clean ground truth of some records: boxes clipped, degenerate ones dropped.

    Attributes:
        boxes: per record, ``float32 [N, 4]`` xyxy pixels of the record's width/height.
        labels: per record, ``int64 [N]`` dataset class indices.
        problems: every box clipped or dropped, in record order.
    """

    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    problems: list[BoxProblem]

    @property
    def clipped(self) -> int:
        return sum(p.kind == "box_outside_image" for p in self.problems)

    @property
    def dropped(self) -> int:
        return sum(p.kind == "degenerate_box" for p in self.problems)


def detection_targets(
    records: Sequence[Record], num_classes: int, *, tol: float = 0.5, min_size: float = 1e-3
) -> DetectionTargets:
    """Check and clean the boxes of detect records before they reach a loss.

    Boxes reaching outside the image by more than ``tol`` pixels are clipped to it and
    reported; boxes with a width or height ``<= min_size`` after clipping (or with
    non-finite coordinates) are dropped and reported. Records without boxes are kept as
    negatives (``[0, 4]`` boxes).

    Args:
        records: detect records (``boxes`` xyxy pixels, ``labels``).
        num_classes: the model's dataset classes (labels must be ``0..num_classes-1``).

    Returns:
        A :class:`DetectionTargets`.

    Raises:
        DatasetError: a label outside ``0..num_classes-1``, or boxes and labels of
            different lengths (the record id and file are named).
    """
    out_boxes, out_labels, problems = [], [], []
    for rec in records:
        boxes = np.asarray(rec.boxes or [], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(rec.labels or [], dtype=np.int64).reshape(-1)
        if labels.shape[0] != boxes.shape[0]:
            raise DatasetError(
                f"record {rec.id!r} ({rec.file}): {boxes.shape[0]} boxes but {labels.shape[0]} labels; "
                "fix the manifest (re-import the dataset)"
            )
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.size:
            raise DatasetError(
                f"record {rec.id!r} ({rec.file}): class id {int(bad[0])} is outside the model's "
                f"{num_classes} classes (0..{num_classes - 1}); fix the labels or train with the dataset's classes"
            )
        keep = np.ones(len(boxes), dtype=bool)
        for i, b in enumerate(boxes):
            if np.all(np.isfinite(b)) and (
                b[0] < -tol or b[1] < -tol or b[2] > rec.width + tol or b[3] > rec.height + tol
            ):
                problems.append(BoxProblem(rec.id, rec.file, i, "box_outside_image",
                                           f"box {b.round(2).tolist()} reaches outside the {rec.width}x{rec.height} image"))  # fmt: skip
            clipped = np.clip(b, 0, [rec.width, rec.height, rec.width, rec.height])
            if (
                not np.all(np.isfinite(b))
                or min(clipped[2] - clipped[0], clipped[3] - clipped[1]) <= min_size
            ):
                keep[i] = False
                problems.append(BoxProblem(rec.id, rec.file, i, "degenerate_box",
                                           f"box {b.round(2).tolist()} has no area inside the image"))  # fmt: skip
            boxes[i] = clipped
        out_boxes.append(boxes[keep].astype(np.float32))
        out_labels.append(labels[keep])
    return DetectionTargets(out_boxes, out_labels, problems)


class DetectionDataset(torch.utils.data.Dataset):
    """``(image, target)`` pairs for detect datasets; images without boxes are negatives.

    Args:
        dataset: the loaded cvpipe dataset (for image paths).
        records: the records to serve, in order.
        targets: their cleaned ground truth (:func:`detection_targets`).
        transform: ``(PIL image, target) → (tensor, target)``
            (:mod:`cvpipe.data.detection_transforms`); None gives a uint8 ``[3, H, W]``
            tensor.
        draft: JPEG reduced-size decode: both sides decoded at least this large.
        pack: a :class:`~cvpipe.data.pack.PackReader`; packed records skip decoding.
        on_error: ``skip`` returns :class:`Skipped` for unreadable images; ``fail``
            raises :class:`DatasetFormatError`.

    Items:
        ``dataset[i]`` or ``dataset[(i, sample_seed)]`` → ``(FloatTensor[3, H, W],
        {"boxes": FloatTensor[N, 4] xyxy pixels of the returned image, "labels":
        Int64Tensor[N]})`` or a :class:`Skipped`. Boxes are rescaled when the decoded
        image (draft decode, pack) is smaller than the record's width/height.
    """

    def __init__(
        self,
        dataset: Dataset,
        records: Sequence[Record],
        targets: DetectionTargets,
        transform: Callable[
            [Image.Image, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]
        ]
        | None = None,
        *,
        draft: int | None = None,
        pack: PackReader | None = None,
        on_error: OnError = "skip",
    ) -> None:
        if len(targets.boxes) != len(records):
            raise ValueError(f"{len(records)} records but {len(targets.boxes)} targets")
        self.dataset = dataset
        self.records = list(records)
        self.targets = targets
        self.transform = transform
        self.draft = draft
        self.pack = pack
        self.on_error = on_error

    def __len__(self) -> int:
        return len(self.records)

    def load_image(self, index: int) -> Image.Image:
        """The decoded RGB image of record ``index`` (from the pack when present)."""
        rec = self.records[index]
        if self.pack is not None:
            arr = self.pack.get(rec)
            if arr is not None:
                return Image.fromarray(arr, "RGB")
        size = (self.draft, self.draft) if self.draft else None
        return self.dataset.load_image(rec, "RGB", draft=size)

    def target(self, index: int, width: int, height: int) -> dict[str, torch.Tensor]:
        """Record ``index``'s boxes in the pixels of a ``width x height`` decode of it."""
        rec = self.records[index]
        boxes = torch.from_numpy(self.targets.boxes[index].copy())
        if (width, height) != (rec.width, rec.height) and boxes.numel():
            scale = torch.tensor([width / rec.width, height / rec.height] * 2, dtype=torch.float32)
            boxes = boxes * scale
        return {"boxes": boxes, "labels": torch.from_numpy(self.targets.labels[index].copy())}

    def __getitem__(
        self, item: int | tuple[int, int]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | Skipped:
        index, sample_seed = item if isinstance(item, tuple) else (item, None)
        rec = self.records[index]
        try:
            im = self.load_image(index)
        except ImageReadError as exc:
            if self.on_error == "fail":
                raise DatasetFormatError(
                    f"{exc.message} (set on_error: skip to skip unreadable images)", path=exc.path
                ) from None
            return Skipped(rec.id, rec.file, exc.kind, exc.message)
        target = self.target(index, im.width, im.height)
        if self.transform is None:
            return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1), target
        if sample_seed is None:
            return self.transform(im, target)
        with seeded_rng(sample_seed):
            return self.transform(im, target)


def collate_detection(
    batch: list[Any],
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], list[Skipped]]:
    """Detection batches are lists (images differ in size, targets in box count).

    Returns:
        ``(images, targets, skipped)``; the lists may be empty when every sample of the
        batch was unreadable.
    """
    good = [b for b in batch if not isinstance(b, Skipped)]
    skipped = [b for b in batch if isinstance(b, Skipped)]
    return [g[0] for g in good], [g[1] for g in good], skipped
