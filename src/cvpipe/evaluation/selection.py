"""Which images an evaluation runs on, and the eval folders it leaves behind.

- :func:`select_eval_data`: a run's dataset (from ``RUN/dataset.lock``, or ``--data``)
  and split (``test``, else ``val`` with a notice; a validation split carved at training
  time is found through the ids in dataset.lock);
- :func:`check_compatible`: the model's task and classes must be the dataset's;
- :func:`iter_predictions` and :func:`reusable_eval`: read a ``predictions.jsonl`` back,
  and tell whether ``RUN/eval`` already holds predictions for this data and checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cvpipe.data.manifest import Dataset, Record
from cvpipe.errors import CheckpointError, DatasetError
from cvpipe.evaluation.base import EvalData
from cvpipe.io import read_json

log = logging.getLogger(__name__)


def read_lock(run: str | Path) -> dict[str, Any]:
    """``RUN/dataset.lock`` as a dict ({} when the run has none)."""
    path = Path(run) / "dataset.lock"
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path}: unreadable dataset lock ({exc}); pass --data DATASET"
        ) from None
    return data if isinstance(data, dict) else {}


def locked_dataset_path(run: str | Path) -> Path:
    """The dataset a run was trained on, from its dataset.lock.

    A relative path is tried from the current directory, then from the run directory.

    Raises:
        DatasetError: no lock, or its dataset is not found (pass ``--data``).
    """
    lock = read_lock(run)
    raw = lock.get("dataset")
    if not raw:
        raise DatasetError(
            f"{run}: no dataset.lock naming the training dataset; pass --data DATASET"
        )
    p = Path(raw)
    for cand in (p, Path(run) / p):
        if (cand / "dataset.yaml").is_file():
            return cand
    raise DatasetError(f"{run}/dataset.lock: dataset {raw} not found; pass --data DATASET")


def select_eval_data(
    run: str | Path, data: str | Path | None = None, split: str | None = None
) -> EvalData:
    """Resolve the dataset and split to evaluate on.

    Args:
        run: the run directory.
        data: dataset directory; default: the one in ``RUN/dataset.lock``.
        split: split name; default ``test``, falling back to ``val`` (with a notice) when
            the dataset has no test split. A validation split carved from train at
            training time (ids in dataset.lock) is used when the manifest has none.

    Raises:
        DatasetError: missing dataset, or the requested split has no images.
    """
    ds = Dataset.load(data if data is not None else locked_dataset_path(run))
    lock = read_lock(run) if data is None else {}
    locked_splits = lock.get("splits") or {}
    same_manifest = lock.get("manifest_sha256") in (None, ds.manifest_hash())

    def records_of(name: str) -> list[Record]:
        recs = ds.split_records(name)
        ids = locked_splits.get(name) if same_manifest else None
        if not recs and isinstance(ids, list) and ids and name != "train":
            wanted = set(map(str, ids))
            recs = [r for r in ds.records if r.id in wanted]
        return recs

    available = sorted(str(s) for s in ds.splits() if s is not None)
    if split is not None:
        recs = records_of(split)
        if not recs:
            raise DatasetError(
                f"{ds.root}: split {split!r} has no images; splits present: {', '.join(available) or 'none'}"
                " (create them with 'cvpipe split')"
            )
        return EvalData(ds, split, recs)
    recs = records_of("test")
    if recs:
        return EvalData(ds, "test", recs)
    recs = records_of("val")
    if recs:
        notice = f"{ds.root} has no test split; evaluating on the validation split instead"
        log.warning(notice)
        return EvalData(ds, "val", recs, notice)
    raise DatasetError(
        f"{ds.root}: no test or val split to evaluate on (splits present: {', '.join(available) or 'none'}); "
        "create one with 'cvpipe split' or pass --split"
    )


def check_compatible(card: Any, ds: Dataset, run: str | Path) -> None:
    """The run's task and classes must match the dataset's.

    Raises:
        CheckpointError: naming both class lists.
    """
    if card.task != ds.task:
        raise CheckpointError(
            f"{run} is a {card.task!r} model but {ds.root} is a {ds.task!r} dataset"
        )
    if list(card.classes) != ds.output_classes:
        raise CheckpointError(
            f"{run} was trained on classes {list(card.classes)} but {ds.root} has {ds.output_classes}; "
            "evaluate on a dataset with the same classes in the same order"
        )


def val_records(ds: Dataset, lock: dict[str, Any]) -> list[Record]:
    """The validation split: from the manifest, else the ids a run carved (dataset.lock)."""
    recs = ds.split_records("val")
    ids = (lock.get("splits") or {}).get("val")
    if not recs and isinstance(ids, list) and lock.get("manifest_sha256") == ds.manifest_hash():
        wanted = set(map(str, ids))
        recs = [r for r in ds.records if r.id in wanted]
    return recs


def iter_predictions(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a ``predictions.jsonl`` written by :func:`evaluate_run`.

    Raises:
        DatasetError: missing file or a line that is not JSON (with its line number).
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: predictions not found; run 'cvpipe eval' first")
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"{p}:{i}: invalid JSON ({exc.msg}); re-run 'cvpipe eval'"
                    ) from None


def reusable_eval(run: str | Path, sel: EvalData, which: str = "best") -> Path | None:
    """``RUN/eval`` when it already holds predictions for this dataset, split and checkpoint.

    Returns:
        The eval folder, or None when it is missing or was made on other data.
    """
    d = Path(run) / "eval"
    if not (d / "metrics.json").is_file() or not (d / "predictions.jsonl").is_file():
        return None
    try:
        m = read_json(d / "metrics.json")
    except (OSError, json.JSONDecodeError):
        return None
    same = (
        m.get("dataset") == str(sel.dataset.root.resolve())
        and m.get("split") == sel.split
        and m.get("manifest_sha256") == sel.dataset.manifest_hash()
        and m.get("which") == which
    )
    ckpt = Path(run) / "checkpoints" / f"{which}.pt"
    if same and ckpt.is_file() and (d / "metrics.json").stat().st_mtime < ckpt.stat().st_mtime:
        return None  # the checkpoint changed after that evaluation
    return d if same else None
