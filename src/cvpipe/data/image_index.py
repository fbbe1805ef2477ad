"""Where is ``x.jpg``? An index of the image files under some folders, by file name.

Annotation formats name an image by its file name only (VOC ``<filename>``, LabelImg's
stale ``<path>``), while real sets keep the images in a sibling folder (``images/``,
``JPEGImages/``, ``images/train/``). :class:`ImageIndex` walks the folders once, lazily
(only when a lookup next to the annotation failed), streamed folder by folder with
``os.walk``, and keeps only plain strings: one entry per file name pointing at a shared
folder string, plus a second table for the few names found in more than one folder and
one for names with capitals (case-insensitive lookups). Memory is the file names
themselves; no :class:`~pathlib.Path` per file (an earlier per-folder index of Path
objects grew by 111 MiB on 50k images).

Example:
    >>> index = ImageIndex([Path("voc")])  # doctest: +SKIP
    >>> index.find("burger_1.jpg")  # doctest: +SKIP
    [PosixPath('voc/images/burger_1.jpg')]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cvpipe.images import IMAGE_EXTENSIONS

_EXTS = frozenset(IMAGE_EXTENSIONS)


class ImageIndex:
    """File name → folder(s) of every image file under ``roots`` (hidden folders skipped).

    Args:
        roots: folders to index; a root inside another one is walked once.
    """

    def __init__(self, roots: Sequence[Path]) -> None:
        absolute = sorted({os.path.abspath(r) for r in roots})
        self.roots = [
            r for r in absolute if not any(r.startswith(o + os.sep) for o in absolute if o != r)
        ]
        self._dirs: list[str] = []
        self._first: dict[str, int] = {}  # name → folder number (walk order)
        self._more: dict[str, list[int]] = {}  # name → further folders (ambiguous names)
        self._lower: dict[str, str] = {}  # lower-cased name → name, for names with capitals
        self._built = False

    def _build(self) -> None:
        for root in self.roots:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                folder = -1
                for name in sorted(filenames):
                    if name.startswith(".") or os.path.splitext(name)[1].lower() not in _EXTS:
                        continue
                    if folder < 0:
                        self._dirs.append(dirpath)
                        folder = len(self._dirs) - 1
                    first = self._first.setdefault(name, folder)
                    if first != folder:
                        self._more.setdefault(name, []).append(folder)
                    low = name.lower()
                    if low != name:
                        self._lower.setdefault(low, name)
        self._built = True

    def __len__(self) -> int:
        """Number of distinct image file names (builds the index)."""
        if not self._built:
            self._build()
        return len(self._first)

    def find(self, name: str) -> list[Path]:
        """Every image file called ``name`` under the roots, in walk order (sorted folders).

        The exact name wins; without it the lookup ignores case. An empty list means the
        name is nowhere under the roots; more than one path means the name is ambiguous.
        """
        if not self._built:
            self._build()
        actual = name
        if actual not in self._first:
            low = name.lower()
            actual = low if low in self._first else self._lower.get(low, "")
            if not actual:
                return []
        folders = [self._first[actual], *self._more.get(actual, ())]
        return [Path(self._dirs[f]) / actual for f in folders]


def closest(candidates: Sequence[Path], near: Path, root: Path) -> tuple[Path, str | None]:
    """The candidate whose folder shares the most folder names with ``near`` (an
    annotation file's folder), both taken relative to ``root``: ``images/train/x.jpg``
    for ``annotations/train/x.xml`` rather than ``images/val/x.jpg``.

    Returns:
        ``(chosen path, the shared folder names joined by "/")``; the names are None when
        no candidate shares more than the others, and the first candidate (walk order)
        is chosen.
    """
    wanted = {p.lower() for p in _parts(near, root)}
    scored = [[p for p in _parts(c.parent, root) if p.lower() in wanted] for c in candidates]
    best = max(range(len(candidates)), key=lambda i: len(scored[i]))  # first of the best
    if all(len(s) == len(scored[best]) for s in scored):
        return candidates[0], None
    return candidates[best], "/".join(scored[best])


def _parts(path: Path, root: Path) -> tuple[str, ...]:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return () if rel == "." else Path(rel).parts
