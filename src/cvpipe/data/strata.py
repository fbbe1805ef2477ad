"""Which class an image stands for when images are split or resampled.

``cvpipe split`` keeps class proportions by stratifying images, and ``cvpipe balance``
resamples images per class; both need one class per image. A task picks its answer
(:meth:`cvpipe.tasks.base.Task.strata`):

- :class:`ByImageClass` (classify, count): the image's own class. A group of images
  (``--group-key``) takes the class most of its images have (ties: the lower index).
- :class:`ByRarestClass` (detect): the rarest class among the image's objects (the class
  present in the fewest images), so small classes are spread first; split strata add a
  bucketed object count (0, 1, 2, 3-4, 5-8, 9+; buckets of fewer than six units merged
  within their class). Images without objects stand for no class (:data:`NO_CLASS`).

Example:
    >>> from cvpipe.tasks import get_task
    >>> get_task("detect").strata().name
    'rarest_class+object_count'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from cvpipe.data.manifest import Record
    from cvpipe.tasks.base import Task

#: The key of an image without objects (it stands for no class).
NO_CLASS = -1

_COUNT_BUCKETS = (0, 1, 2, 3, 5, 9)  # lower edges: 0 | 1 | 2 | 3-4 | 5-8 | 9+


class Strata(ABC):
    """A task's answer to "which class does this image stand for".

    Attributes:
        name: the stratification written to ``dataset.yaml`` (``split.stratify``).
        every_split: a class in at least as many images as there are splits gets at least
            one image in each split (where one image holds several classes, a rare class
            would otherwise vanish from val or test).
        balance_unit: what ``cvpipe balance`` counts per class.
    """

    name: str
    every_split: ClassVar[bool] = False
    balance_unit: ClassVar[str] = "images per class"

    def __init__(self, task: Task) -> None:
        self.task = task

    @abstractmethod
    def keys(self, units: Sequence[Sequence[Record]], classes: Sequence[str]) -> list[Hashable]:
        """The stratum of each unit (an image, or a group of images that stay together)."""

    @abstractmethod
    def image_keys(self, records: Sequence[Record], classes: Sequence[str]) -> list[int]:
        """The class each image stands for when resampling (:data:`NO_CLASS`: none)."""


class ByImageClass(Strata):
    """Images by their own class (``Task.class_index``).

    Args:
        task: a task with one class per image.
        name: what the class is, for ``dataset.yaml`` (``"class"``, ``"count"``).
    """

    def __init__(self, task: Task, name: str = "class") -> None:
        super().__init__(task)
        self.name = name

    def keys(self, units: Sequence[Sequence[Record]], classes: Sequence[str]) -> list[Hashable]:
        out: list[Hashable] = []
        for members in units:
            votes = Counter(self.task.class_index(r, classes) for r in members)
            out.append(min(votes, key=lambda c: (-votes[c], c)))
        return out

    def image_keys(self, records: Sequence[Record], classes: Sequence[str]) -> list[int]:
        return [self.task.class_index(r, classes) for r in records]


class ByRarestClass(Strata):
    """Images by the rarest class among their objects (``Task.record_classes``)."""

    name = "rarest_class+object_count"
    every_split: ClassVar[bool] = True
    balance_unit: ClassVar[str] = "images per rarest class"

    def _frequency(self, records: Sequence[Record], classes: Sequence[str]) -> Counter[int]:
        """Images holding each class."""
        return Counter(c for r in records for c in set(self.task.record_classes(r, classes)))

    def keys(self, units: Sequence[Sequence[Record]], classes: Sequence[str]) -> list[Hashable]:
        freq = self._frequency([r for members in units for r in members], classes)
        raw: list[tuple[int, int]] = []
        for members in units:
            objects = [c for r in members for c in self.task.record_classes(r, classes)]
            rarest = min(set(objects), key=lambda c: (freq[c], c)) if objects else NO_CLASS
            raw.append((rarest, _bucket(len(objects))))
        sizes = Counter(raw)
        return [key if sizes[key] >= 6 else (key[0], -1) for key in raw]  # merge rare buckets

    def image_keys(self, records: Sequence[Record], classes: Sequence[str]) -> list[int]:
        freq = self._frequency(records, classes)
        out = []
        for r in records:
            objects = set(self.task.record_classes(r, classes))
            out.append(min(objects, key=lambda c: (freq[c], c)) if objects else NO_CLASS)
        return out


def _bucket(n: int) -> int:
    return max(i for i, lo in enumerate(_COUNT_BUCKETS) if n >= lo)
