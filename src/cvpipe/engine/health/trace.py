"""The recorded health data of a run: ``RUN/health/trace.jsonl``.

One JSON object per line, told apart by ``kind``:

- ``meta``: task, classes, class counts of the train split, device, CPUs, workers,
  batch size, world size, sampling settings, parameter groups and hooked layers;
- ``step`` (every optimizer step): ``s`` global step, ``e`` epoch (1-based), ``loss``,
  ``n`` items, ``lr``, ``data_s`` (waiting for the loader), ``compute_s`` (forward,
  backward, optimizer), ``t`` seconds since the start;
- ``sample`` (sampled steps): per parameter group ``grad`` and ``weight`` norms and
  ``update`` (‖Δw‖/‖w‖); per hooked layer ``act`` statistics ``mean``, ``std``, ``zero``
  (fraction of exact zeros) and ``sat`` (fraction saturated, sigmoid/tanh only);
- ``sys`` (every ``system_every_s``): ``cpu`` (machine %), ``proc_cpu`` (this process and
  its loader workers, % of one core), ``ram`` (machine %), ``rss_mb``, ``gpu`` and
  ``gpu_mem`` (% , NVML, when present);
- ``epoch``: the epoch row of ``metrics.jsonl`` (``train.loss``, ``val.loss``...);
- ``event``: ``diverged`` / ``failed`` with a message.

Rules read a :class:`Trace`, so ``cvpipe health RUN`` re-runs them offline.

Example:
    >>> tr = Trace.read("runs/a/health/trace.jsonl")  # doctest: +SKIP
    >>> tr.column(tr.steps, "loss")[:3]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.errors import CvpipeError

KINDS = ("meta", "step", "sample", "sys", "epoch", "event")


@dataclass
class Trace:
    """Rows of a health trace, by kind (see the module docstring for the fields)."""

    meta: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    system: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        """Append one row to the list of its ``kind``."""
        kind = row.get("kind")
        if kind == "meta":
            self.meta.update({k: v for k, v in row.items() if k != "kind"})
        elif kind == "step":
            self.steps.append(row)
        elif kind == "sample":
            self.samples.append(row)
        elif kind == "sys":
            self.system.append(row)
        elif kind == "epoch":
            self.epochs.append(row)
        elif kind == "event":
            self.events.append(row)

    @staticmethod
    def column(rows: list[dict[str, Any]], key: str) -> np.ndarray:
        """``key`` of each row as a float array (missing or None → NaN)."""
        out = np.full(len(rows), np.nan)
        for i, r in enumerate(rows):
            v = r.get(key)
            if v is not None:
                out[i] = float(v)
        return out

    @property
    def step_time(self) -> np.ndarray:
        """Seconds per optimizer step (data wait + compute)."""
        return self.column(self.steps, "data_s") + self.column(self.steps, "compute_s")

    @classmethod
    def read(cls, path: str | Path) -> Trace:
        """Read ``trace.jsonl``; a torn last line (killed run) is ignored.

        Raises:
            CvpipeError: the file is missing, or a line other than the last is not JSON.
        """
        p = Path(path)
        if not p.is_file():
            raise CvpipeError(
                f"{p}: no health trace; the run was trained without health collection "
                "(health.enabled: false) or by a cvpipe older than the health collector"
            )
        tr = cls()
        lines = p.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                tr.add(json.loads(line))
            except json.JSONDecodeError as exc:
                if i == len(lines) - 1:
                    break
                raise CvpipeError(f"{p}:{i + 1}: not a JSON object ({exc.msg})") from None
        return tr
