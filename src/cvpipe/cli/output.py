"""Plain-text tables and messages printed by the command line (never by the library)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], title: str | None = None) -> str:
    """Render rows as an aligned text table (numbers right-aligned)."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    numeric = [all(_is_num(r[i]) for r in rows) if rows else False for i in range(len(headers))]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(vals, widths, strict=False))
        ).rstrip()

    out = []
    if title:
        out.append(title)
    out.append(line(list(headers)))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or v is None


def echo(msg: str = "") -> None:
    print(msg, file=sys.stdout, flush=True)


def warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
