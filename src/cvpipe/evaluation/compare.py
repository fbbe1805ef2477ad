"""Compare runs on the same images: :func:`compare_runs` and what every comparison shares.

The first run's task chooses the comparison (:meth:`cvpipe.tasks.base.Task.evaluator`):
accuracy with McNemar's test and a paired bootstrap CI for classifiers and counters
(:mod:`cvpipe.evaluation.classify_compare`), mAP with PR curves and a paired bootstrap of
the mAP gap for detectors (:mod:`cvpipe.evaluation.detect_compare`, whose entries may
also be eval folders). Both write ``OUT/compare.json`` and ``OUT/report.html``.

Example:
    >>> res = compare_runs(["runs/custom_cnn", "runs/r50"], out="compare")  # doctest: +SKIP
    >>> res.data["pairs"][0]["diff"]  # doctest: +SKIP
    0.046
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.evaluation.base import CompareResult
from cvpipe.io import read_json
from cvpipe.report import Report
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)


def compare_runs(
    runs: Sequence[str | Path],
    *,
    names: Sequence[str] | None = None,
    data: str | Path | None = None,
    split: str | None = None,
    which: str = "best",
    out: str | Path = "compare",
    batch_size: int = 64,
    workers: int = 0,
    device: str = "cpu",
    n_resamples: int = 2000,
    seed: int = 0,
    report: bool = True,
) -> CompareResult:
    """Compare runs side by side against the first one (the baseline).

    Args:
        runs: two or more run directories (detectors: also eval folders); the first is
            the baseline and its task chooses the comparison.
        names: display names (default: the run folder names).
        data: dataset (default: the first run's training dataset from dataset.lock).
        split: split (default test, else val with a notice).
        which: checkpoint of every run, ``best`` or ``last``.
        out: output folder for compare.json, report.html and fresh evaluations.
        batch_size, workers, device: inference settings for runs evaluated here.
        n_resamples, seed: paired bootstrap settings.
        report: write report.html.

    Returns:
        :class:`~cvpipe.evaluation.base.CompareResult`.

    Raises:
        ConfigError: fewer than two runs, or names that do not match.
        CheckpointError: runs with different tasks or classes, or a first entry that is
            neither a run nor an eval folder.
    """
    if len(runs) < 2:
        raise ConfigError("compare needs at least two runs (the first is the baseline)")
    task = task_of(runs[0])
    if task is None:
        raise CheckpointError(
            f"{runs[0]}: not a run directory (model_card.json) or an eval folder "
            "(metrics.json) with a readable task"
        )
    return get_task(task).evaluator().compare(
        runs, names=names, data=data, split=split, which=which, out=out,
        batch_size=batch_size, workers=workers, device=device, n_resamples=n_resamples,
        seed=seed, report=report,
    )  # fmt: skip


def task_of(path: str | Path) -> str | None:
    """The task of a run directory or eval folder, or None when it cannot be told."""
    p = Path(path)
    for f in (p / "model_card.json", p / "metrics.json"):
        if f.is_file():
            try:
                return str(read_json(f).get("task"))
            except (OSError, ValueError):
                return None
    return None


def is_eval_dir(path: str | Path) -> bool:
    """An eval output folder (metrics.json + predictions.jsonl, no model card)."""
    p = Path(path)
    return (
        (p / "metrics.json").is_file()
        and (p / "predictions.jsonl").is_file()
        and not (p / "model_card.json").is_file()
    )


def run_names(runs: Sequence[str | Path], names: Sequence[str] | None = None) -> list[str]:
    """Display names: given ``names``, else run folder names made unique.

    Raises:
        ConfigError: the number of names differs from the number of runs.
    """
    if names:
        if len(names) != len(runs):
            raise ConfigError(
                f"--names has {len(names)} names for {len(runs)} runs; give one name per run"
            )
        return [str(n) for n in names]
    out: list[str] = []
    for r in runs:
        base = Path(r).resolve().name or str(r)
        name, k = base, 2
        while name in out:
            name, k = f"{base}_{k}", k + 1
        out.append(name)
    return out


def compare_report_head(
    data: Any, overall: tuple[list[str], list[list[Any]]], caption: str
) -> Report:
    """A comparison report's title and "Overall" section (shared by every task).

    Args:
        data: compare.json's content (runs, n, dataset, split, baseline, notice).
        overall: (headers, rows) of the side-by-side table.
        caption: what the Δ columns are measured against.
    """
    names = [run["name"] for run in data["runs"]]
    r = Report(
        f"Comparison: {' vs '.join(names)}",
        subtitle=f"{data['n']} images of {data['dataset']} [{data['split']}], baseline {data['baseline']}",
    )
    r.section("Overall")
    if data.get("notice"):
        r.note(data["notice"], level="warning")
    headers, rows = overall
    r.table(headers, rows, caption=caption)
    return r
