"""A small name → object registry with helpful errors.

Example:
    >>> IMPORTERS: Registry[type] = Registry("dataset format")
    >>> @IMPORTERS.register("voc")
    ... class VocImporter: ...
    >>> IMPORTERS.get("vco")
    Traceback (most recent call last):
    cvpipe.errors.UnknownNameError: unknown dataset format 'vco'; did you mean 'voc'? ...
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from cvpipe.errors import UnknownNameError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """Return a "did you mean ...?" fragment for ``name`` among ``choices`` (may be empty)."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "? "


class Registry(Generic[T]):
    """Maps names to objects (classes or builder functions).

    Args:
        kind: what the registry holds, used in messages (e.g. ``"model"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an object under ``name``; a duplicate name raises ValueError."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            UnknownNameError: with close matches and the full list of valid names.
        """
        try:
            return self._items[name]
        except KeyError:
            hint = suggest(name, list(self._items))
            valid = ", ".join(sorted(self._items))
            raise UnknownNameError(f"unknown {self.kind} {name!r}; {hint}valid: {valid}") from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell-style pattern."""
        names = sorted(self._items)
        if pattern:
            names = [n for n in names if fnmatch.fnmatch(n, pattern)]
        return names

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
