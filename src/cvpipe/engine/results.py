"""What a run leaves behind besides its checkpoints: the :class:`RunResult` ``train()``
returns, the metadata checkpoints carry (:func:`run_meta`) and ``model_card.json``
(:func:`write_card`).

Example:
    >>> result = RunResult.from_run_dir("runs/r50")  # doctest: +SKIP
    >>> result.best_epoch, result.best["val.accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvpipe.engine.callbacks import Monitor
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.runs import ModelCard, RunDir, read_metrics
from cvpipe.io import write_json


@dataclass
class RunResult:
    """What a finished (or early-stopped) run produced.

    Attributes:
        run_dir: the run directory.
        history: epoch rows of metrics.jsonl.
        best: the epoch row with the best monitored metric.
        best_epoch: its 1-based epoch.
        stopped_early: True when early stopping ended the run.
        feature_cache: ``hit`` / ``miss`` when cached features were used, else None.
        skipped_images: unreadable images met (distinct files).
    """

    run_dir: Path
    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_epoch: int | None
    stopped_early: bool = False
    feature_cache: str | None = None
    skipped_images: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run_dir(cls, run: str | Path) -> RunResult:
        """Rebuild the result from the files of a run directory."""
        rd = RunDir(run)
        history = read_metrics(rd.root)
        card = ModelCard.load(rd.card)
        best_epoch = card.metrics.get("best_epoch")
        best = next((r for r in history if r["epoch"] == best_epoch), None)
        info = card.extra
        return cls(
            rd.root,
            history,
            best,
            best_epoch,
            bool(info.get("stopped_early")),
            info.get("feature_cache"),
            int(info.get("skipped_images", 0)),
        )


def run_meta(
    config: TrainConfig, net: Any, task: str, classes: list[str], head: dict[str, Any]
) -> dict[str, Any]:
    from cvpipe.version import __version__

    return {
        "task": task, "classes": classes, "model": config.model_name, "head": head,
        "preprocess": net.preprocess.to_json(), "input_size": net.preprocess.input_size,
        "freeze": config.freeze, "weights": config.weights, "weights_info": _jsonable(net.weights_info),
        "cvpipe_version": __version__,
    }  # fmt: skip


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if isinstance(v, (str, int, float, bool, type(None), list))}


def write_card(
    rd: RunDir,
    meta: dict[str, Any],
    monitor: Monitor,
    history: list[dict[str, Any]],
    extra: dict[str, Any],
) -> None:
    from cvpipe.models.preprocess import Preprocess

    best = next((r for r in history if r["epoch"] == monitor.best_epoch), None)
    metrics = {k: v for k, v in (best or {}).items() if k not in ("kind", "epoch")}
    metrics.update(best_epoch=monitor.best_epoch, monitor=monitor.metric, mode=monitor.mode)
    card = ModelCard(
        task=meta["task"], classes=meta["classes"], model=meta["model"], head=meta["head"],
        preprocess=Preprocess.from_json(meta["preprocess"]), input_size=meta["input_size"], metrics=metrics,
        weights=meta["weights"], freeze=meta["freeze"], created=meta["created"],
        cvpipe_version=meta["cvpipe_version"], extra=extra, exif=meta.get("exif", "keep"),
    )  # fmt: skip
    payload = card.to_json()
    payload.update({k: meta[k] for k in ("thresholds", "detector") if k in meta})  # detect cards
    write_json(rd.card, payload)
