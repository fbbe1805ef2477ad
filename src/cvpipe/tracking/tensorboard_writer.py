"""TensorBoard backend: event files written with ``torch.utils.tensorboard``.

Metric names map to TensorBoard tags by their first dot (``train.loss`` → ``train/loss``,
step rows → ``step/loss``), so TensorBoard groups them by split. The config, the model
card and health findings are text summaries; ``tensorboard --logdir RUN/tensorboard`` (or a
tuning study's ``OUT/trials``) shows them.

Example:
    >>> w = TensorBoardTracker("runs/a/tensorboard")  # doctest: +SKIP
    >>> w.log_metrics({"val.loss": 0.3}, step=1); w.end()  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvpipe.errors import MissingDependencyError


def tag(name: str) -> str:
    """``train.loss`` → ``train/loss``; a name without a dot is kept."""
    return name.replace(".", "/", 1)


class TensorBoardTracker:
    """An event-file writer for one run.

    Raises:
        MissingDependencyError: the ``tensorboard`` package is not installed.
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependencyError(
                "tracking=tensorboard needs TensorBoard: pip install 'cvpipe[track]' (or pip install tensorboard)"
            ) from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_metrics(self, metrics: Mapping[str, float], step: int, flush: bool = True) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(tag(k), v, int(step))
        if flush:
            self.writer.flush()

    def log_text(self, name: str, text: str, step: int = 0) -> None:
        # TensorBoard renders markdown; a code fence keeps YAML/JSON as written
        self.writer.add_text(name, f"```\n{text}\n```", step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        import yaml

        self.log_text("config", yaml.safe_dump(dict(params), sort_keys=False))

    def flush(self) -> None:
        self.writer.flush()

    def end(self) -> None:
        self.writer.flush()
        self.writer.close()
