"""Unreadable images met while training: each logged once, appended to the run's
``problems.jsonl`` (by rank 0), and a clear stop when too many of an epoch's images fail.

Loaders skip an image they cannot decode (:class:`~cvpipe.data.datasets.Skipped`) instead
of failing the run; :class:`SkippedImages` is where those reports end up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cvpipe.errors import DatasetError

log = logging.getLogger(__name__)


class SkippedImages:
    """The images a run skipped (by record id), and what happens when one is met.

    Args:
        problems: the run's ``problems.jsonl``.
        write: whether this process writes it (rank 0).
        max_fraction: the share of an epoch's training images that may fail.
    """

    def __init__(self, problems: Path, write: bool, max_fraction: float) -> None:
        self.problems, self.write, self.max_fraction = problems, write, max_fraction
        self.seen: set[str] = set()

    def report(self, skipped: Iterable[Any]) -> None:
        """Log and record the skipped images not met before."""
        new = [s for s in skipped if s.record_id not in self.seen]
        if not new:
            return
        for s in new:
            self.seen.add(s.record_id)
            log.warning("skipped unreadable image %s (%s): %s", s.file, s.kind, s.message)
        if self.write:
            self.problems.parent.mkdir(parents=True, exist_ok=True)
            with open(self.problems, "a", encoding="utf-8") as f:
                for s in new:
                    f.write(json.dumps(s.to_json()) + "\n")

    def check_epoch(self, stats: dict[str, Any], epoch: int) -> None:
        """Stop the run when more than ``max_fraction`` of the epoch's images failed.

        Raises:
            DatasetError: naming the count, the limit, the problems file and the fix.
        """
        total = stats["images"] + stats["skipped"]
        if total and stats["skipped"] / total > self.max_fraction:
            raise DatasetError(
                f"epoch {epoch + 1}: {stats['skipped']} of {total} training images could not be read "
                f"(more than max_skipped_fraction={self.max_fraction}); see {self.problems} "
                "and run 'cvpipe validate' on the dataset"
            )
