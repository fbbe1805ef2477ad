"""The run directory and what is read back from it.

::

    RUN/config.yaml          resolved TrainConfig
    RUN/dataset.lock         dataset path, manifest hash, split ids, carved-val flag, seed
    RUN/metrics.jsonl        {"kind": "step", ...} and {"kind": "epoch", ...} rows
    RUN/problems.jsonl       unreadable images met during training (skipped)
    RUN/checkpoints/last.pt, best.pt
    RUN/model_card.json      task, classes, model, head, preprocessing, best metrics

The trained model is rebuilt from a run by :func:`cvpipe.inference.loading.load_model`.

Example:
    >>> card = ModelCard.load(RunDir("runs/r50").card)  # doctest: +SKIP
    >>> card.classes, card.preprocess.input_size  # doctest: +SKIP
    (['1', '2', '3', '4', '5'], 224)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from cvpipe.errors import CheckpointError
from cvpipe.io import atomic_write_text, read_json, write_json

if TYPE_CHECKING:
    from cvpipe.models.preprocess import Preprocess

log = logging.getLogger(__name__)


class RunDir:
    """Paths inside a run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml")
    lock = property(lambda self: self.root / "dataset.lock")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    problems = property(lambda self: self.root / "problems.jsonl")
    card = property(lambda self: self.root / "model_card.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    last = property(lambda self: self.root / "checkpoints" / "last.pt")
    best = property(lambda self: self.root / "checkpoints" / "best.pt")

    def checkpoint(self, which: str) -> Path:
        """``best``, ``last`` or a file path."""
        if which in ("best", "last"):
            return self.checkpoints / f"{which}.pt"
        return Path(which)


@dataclass
class ModelCard:
    """What a trained model is and how to feed it (``model_card.json``)."""

    task: str
    classes: list[str]
    model: str
    head: dict[str, Any]
    preprocess: Preprocess
    input_size: int
    metrics: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    freeze: str = "full"
    created: str = ""
    cvpipe_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # "apply": trained on a dataset imported with --exif apply, so predict and serve turn
    # each input photo by its own EXIF orientation before preprocessing
    exif: str = "keep"

    @property
    def orientation(self) -> Literal["exif"] | None:
        """How predict/serve orient an input file (``orientation=`` of
        :func:`cvpipe.images.decode`): ``"exif"`` for ``exif: apply`` cards."""
        return "exif" if self.exif == "apply" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": list(self.classes),
            "model": self.model,
            "head": self.head,
            "preprocess": self.preprocess.to_json(),
            "input_size": self.input_size,
            "metrics": self.metrics,
            "weights": self.weights,
            "freeze": self.freeze,
            "created": self.created,
            "cvpipe_version": self.cvpipe_version,
            **({"extra": self.extra} if self.extra else {}),
            **({"exif": self.exif} if self.exif != "keep" else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelCard:
        from cvpipe.models.preprocess import Preprocess

        try:
            return cls(
                task=d["task"],
                classes=list(d["classes"]),
                model=d["model"],
                head=dict(d.get("head") or {}),
                preprocess=Preprocess.from_json(d["preprocess"]),
                input_size=int(d.get("input_size") or d["preprocess"]["input_size"]),
                metrics=dict(d.get("metrics") or {}),
                weights=d.get("weights"),
                freeze=d.get("freeze", "full"),
                created=d.get("created", ""),
                cvpipe_version=d.get("cvpipe_version", ""),
                extra=_extra_of(d),
                exif=_exif_of(d),
            )
        except KeyError as exc:
            raise CheckpointError(f"model card is missing the field {exc.args[0]!r}") from None

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(
                f"{p}: model card not found; is {p.parent} a cvpipe run directory?"
            )
        return cls.from_json(read_json(p))


def _exif_of(d: dict[str, Any]) -> str:
    value = d.get("exif", "keep")
    if value not in ("keep", "apply"):
        raise CheckpointError(f"model card field 'exif' is {value!r}; valid: keep, apply")
    return str(value)


def _extra_of(d: dict[str, Any]) -> dict[str, Any]:
    """``extra`` of a card; detect cards may also keep ``thresholds`` / ``detector`` at the
    top level (issue 4 contract): they are folded into ``extra`` (``extra`` wins)."""
    extra = dict(d.get("extra") or {})
    for key in ("thresholds", "detector"):
        if isinstance(d.get(key), dict):
            extra.setdefault(key, dict(d[key]))
    return extra


class MetricsLog:
    """Appends JSON rows to ``metrics.jsonl`` (line-buffered; one row per line).

    Args:
        path: the metrics file.
        keep_epochs_below: on resume, rows of epochs ``>=`` this are dropped first (they
            belong to the interrupted epoch and will be written again).
    """

    def __init__(self, path: Path, keep_epochs_below: int | None = None) -> None:
        self.path = path
        if keep_epochs_below is None:
            atomic_write_text(path, "")
        elif path.exists():
            kept = [
                line
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("epoch", -1) < keep_epochs_below
            ]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self._f: IO[str] | None = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, row: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(row, allow_nan=True) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_metrics(run: str | Path, kind: str | None = "epoch") -> list[dict[str, Any]]:
    """Rows of ``RUN/metrics.jsonl`` (only ``kind`` rows unless kind is None)."""
    path = RunDir(run).metrics
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return [r for r in rows if kind is None or r.get("kind") == kind]
