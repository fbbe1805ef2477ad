"""Torch dataset of detect records: images with their boxes and box classes.

:class:`DetectionDataset` turns detect records into ``(image tensor, {"boxes",
"labels"})`` pairs; its ground truth is checked once by :func:`detection_targets` (boxes
outside the image clipped, degenerate boxes dropped, both reported as
:class:`BoxProblem`; class ids outside the model an error). Images without boxes are
negatives. :func:`collate_detection` batches them as lists. Decoding, unreadable images
(:class:`~cvpipe.data.datasets.Skipped`) and seeded augmentation work as in
:mod:`cvpipe.data.datasets`.

Example:
    >>> targets = detection_targets(ds.split_records("train"), len(ds.classes))  # doctest: +SKIP
    >>> data = DetectionDataset(ds, ds.split_records("train"), targets)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from cvpipe.data.datasets import Skipped, seeded_rng
from cvpipe.data.manifest import Dataset, Record
from cvpipe.data.problems import OnError
from cvpipe.errors import DatasetError, DatasetFormatError
from cvpipe.images import ImageReadError

if TYPE_CHECKING:
    from cvpipe.data.pack import PackReader


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
