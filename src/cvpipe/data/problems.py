"""Problems found while importing or validating, and what was done about each.

Nothing is dropped silently: every skipped file, clipped box or corrected size becomes a
:class:`Problem` that ends up in a report file and in the printed summary.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from cvpipe.errors import DatasetFormatError

OnError = Literal["fail", "skip", "report"]


@dataclass(slots=True)
class Problem:
    """One finding.

    Attributes:
        file: the file concerned (annotation or image).
        kind: short machine-readable kind (``truncated``, ``box_outside``, ...).
        message: what is wrong, for a person.
        action: what cvpipe did (``skipped image``, ``clipped box``, ``used real size``...).
        line: line or record number in ``file`` when known.
        field: field or column when known.
    """

    file: str
    kind: str
    message: str
    action: str
    line: int | None = None
    field: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class ProblemLog:
    """Collects problems; with policy ``fail`` the first *fatal* problem raises.

    Args:
        on_error: ``fail`` raises :class:`DatasetFormatError` on fatal problems;
            ``skip`` and ``report`` record them and go on.
    """

    def __init__(self, on_error: OnError = "skip") -> None:
        self.on_error = on_error
        self.problems: list[Problem] = []

    def add(
        self,
        file: str | Path,
        kind: str,
        message: str,
        action: str,
        *,
        line: int | None = None,
        field: str | None = None,
        fatal: bool = False,
    ) -> None:
        """Record a problem. ``fatal`` ones (the record cannot be used) raise under ``fail``."""
        if fatal and self.on_error == "fail":
            raise DatasetFormatError(
                f"{message} (use --on-error skip to skip such files and list them in the report)",
                path=file,
                line=line,
                field=field,
            )
        self.problems.append(Problem(str(file), kind, message, action, line, field))

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    def __len__(self) -> int:
        return len(self.problems)

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.problems]
