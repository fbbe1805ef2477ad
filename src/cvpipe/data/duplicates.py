"""Content duplicates: blake2b digests of file bytes, and files grouped by digest.

Shared by ``cvpipe validate`` (``duplicate`` / ``leak`` findings) and ``cvpipe eda``
(duplicate summary when no ``validation.json`` exists). Hashing runs in threads (hashlib
releases the GIL on large blocks); only hex digests are kept.

Example:
    >>> digests = hash_files([Path("a.jpg"), Path("b.jpg")])  # doctest: +SKIP
    >>> group_by_digest(digests)  # doctest: +SKIP
    {'3f1c...': [0, 1]}
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cvpipe.progress import Bar

_HASH_BLOCK = 1 << 20


def hash_file(path: str | Path) -> str:
    """blake2b (128-bit) hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def hash_files(paths: list[Path], workers: int | None = None) -> list[str | None]:
    """blake2b digests of many files in a thread pool (None for a file that cannot be read)."""

    def one(p: Path) -> str | None:
        try:
            return hash_file(p)
        except OSError:
            return None

    with (
        Bar(total=len(paths), desc="hash", unit="file") as bar,
        ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="cvpipe-hash"
        ) as pool,
    ):
        out = []
        for d in pool.map(one, paths):
            out.append(d)
            bar.update()
    return out


def group_by_digest(digests: Sequence[str | None]) -> dict[str, list[int]]:
    """Indices of files sharing a digest, for every digest held by two files or more.

    Args:
        digests: one digest per file (None: not hashed, unreadable or left out).

    Returns:
        digest → indices in input order (the first is the original, the others its
        copies); groups in order of their first file.

    Example:
        >>> group_by_digest(["a", None, "b", "a"])
        {'a': [0, 3]}
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(digests):
        if d is not None:
            groups[d].append(i)
    return {d: members for d, members in groups.items() if len(members) > 1}
