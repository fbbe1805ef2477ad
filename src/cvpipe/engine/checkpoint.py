"""Checkpoints: atomic saves, safe loads (``weights_only=True``), compatibility checks.

A checkpoint is a plain dict of tensors and numbers::

    {"model": state_dict, "optimizer": state_dict, "scheduler": state_dict | None,
     "scaler": state_dict | None, "epoch": int, "meta": "<JSON string>"}

``meta`` holds the task, class names, model name, head, preprocessing and the monitor /
early-stopping state, as JSON text so the file loads with ``weights_only=True``.

Example:
    >>> ckpt = load_checkpoint("runs/a/checkpoints/last.pt")  # doctest: +SKIP
    >>> check_compatible(ckpt_meta(ckpt), task="count", classes=["1", "2"], path="...")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from cvpipe.errors import CheckpointError
from cvpipe.io import atomic_open

log = logging.getLogger(__name__)


def save_checkpoint(path: str | Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``state`` plus JSON ``meta`` to ``path`` atomically.

    Args:
        path: destination (parent created).
        state: ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``epoch`` entries.
        meta: JSON-serialisable metadata.
    """
    payload = dict(state)
    payload["meta"] = json.dumps(meta, sort_keys=True)
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely on the CPU.

    Raises:
        CheckpointError: missing file, not a cvpipe checkpoint, or unreadable.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on bad files
        raise CheckpointError(
            f"{p}: cannot read checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "meta" not in ckpt:
        raise CheckpointError(f"{p}: not a cvpipe checkpoint (expected keys 'model' and 'meta')")
    return ckpt


def ckpt_meta(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The parsed ``meta`` of a loaded checkpoint."""
    meta = ckpt.get("meta", "{}")
    return json.loads(meta) if isinstance(meta, str) else dict(meta)


def check_compatible(
    meta: dict[str, Any],
    *,
    path: str | Path,
    task: str | None = None,
    classes: list[str] | None = None,
    model: str | None = None,
) -> None:
    """Raise a clear error when a checkpoint does not fit the task, classes or model.

    Raises:
        CheckpointError: naming what differs and how to fix it.
    """
    if task is not None and meta.get("task") != task:
        raise CheckpointError(
            f"{path}: checkpoint is for task {meta.get('task')!r}, not {task!r}; "
            "train a new run (without --resume) or pick a run of the same task"
        )
    if (
        classes is not None
        and meta.get("classes") is not None
        and list(meta["classes"]) != list(classes)
    ):
        old = meta["classes"]
        raise CheckpointError(
            f"{path}: checkpoint has {len(old)} classes {old}, the dataset has {len(classes)} {classes}; "
            "resume only with the dataset the run was trained on, or start a new run"
        )
    if model is not None and meta.get("model") not in (None, model):
        raise CheckpointError(f"{path}: checkpoint is a {meta.get('model')!r} model, not {model!r}")


def load_state_strict(module: torch.nn.Module, state: dict[str, Any], path: str | Path) -> None:
    """``load_state_dict(strict=True)`` with missing/unexpected keys named in the error.

    Raises:
        CheckpointError: keys or shapes do not match.
    """
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = "; ".join(line.strip() for line in first[:4])
        raise CheckpointError(f"{path}: weights do not fit the model: {detail}") from None
