"""Progress bars that the command line turns on and library code merely requests.

Library code wraps long loops with :func:`track`; it shows nothing unless the CLI (or a
user) called :func:`enable`, so importing or calling cvpipe from a notebook stays quiet
unless asked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_enabled = False


def enable(on: bool = True) -> None:
    """Turn progress bars on (the CLI does this when stderr is a terminal or forced)."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


def track(
    iterable: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    **kwargs: Any,
) -> Iterator[T]:
    """Iterate over ``iterable`` with a tqdm bar when progress is enabled."""
    if not _enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    bar = tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        **kwargs,
    )
    try:
        yield from bar
    finally:
        bar.close()


class Bar:
    """A manually updated bar (``update(n)``, ``set_postfix(...)``); silent when disabled."""

    def __init__(
        self, total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any
    ) -> None:
        self._bar: Any = None
        if _enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
                **kwargs,
            )

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**kwargs, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
