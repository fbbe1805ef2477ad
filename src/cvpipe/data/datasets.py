"""Torch datasets and samplers over a cvpipe dataset: images with one class each, the
seeded epoch sampler, and the pieces every loader shares (:class:`Skipped`,
:func:`seeded_rng`). Detection's dataset is in :mod:`cvpipe.data.detection_datasets`.

:class:`ImageDataset` turns manifest records into ``(image tensor, class index)`` pairs.
It decodes JPEGs at reduced size (``draft``), reads pre-resized pixels from a pack
(:mod:`cvpipe.data.pack`) when one is given, and never lets one broken image kill a run:
with ``on_error="skip"`` a corrupt file becomes a :class:`Skipped` marker that
:func:`collate_skip` drops from the batch and hands to the trainer, which logs it, counts
it and lists it in the run's ``problems.jsonl``.

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

from cvpipe.data.manifest import Dataset, Record
from cvpipe.data.problems import OnError
from cvpipe.data.transforms import RandomResizedCropTransform
from cvpipe.errors import DatasetFormatError
from cvpipe.images import ImageReadError
from cvpipe.tasks.registry import get_task

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
        # records without one class per image (objects) have no class label: their pixels
        # only are served (feature pass), with target -1
        one_class = get_task(dataset.task).one_class_per_image
        self.targets = [dataset.class_index(r) if one_class else -1 for r in self.records]

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
