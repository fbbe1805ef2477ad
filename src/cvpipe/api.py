"""The Python API: one function per command-line verb.

Each function imports its implementation lazily so ``import cvpipe`` stays light.

Example:
    >>> import cvpipe
    >>> ds = cvpipe.import_dataset("imagefolder", "scenes/", out="datasets/scenes")  # doctest: +SKIP
    >>> report = cvpipe.validate("datasets/scenes")  # doctest: +SKIP
    >>> cvpipe.split("datasets/scenes", ratios="70/20/10", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvpipe.data.manifest import Dataset


def load_dataset(root: str | Path) -> Dataset:
    """Load a dataset directory written by ``cvpipe import``."""
    from cvpipe.data.manifest import Dataset

    return Dataset.load(root)


def import_dataset(format: str, source: str | Path, out: str | Path, **options: Any) -> Dataset:
    """``cvpipe import``: see :func:`cvpipe.data.importers.base.import_dataset`.

    Keyword options are those of :class:`~cvpipe.data.importers.base.ImportOptions`.
    """
    from cvpipe.config import load_config
    from cvpipe.data.importers import ImportOptions
    from cvpipe.data.importers import import_dataset as _import

    return _import(format, source, out, load_config(ImportOptions, values=options))


def export_dataset(dataset: str | Path, format: str, out: str | Path, **options: Any) -> Path:
    """``cvpipe export-data``: write a dataset in another format."""
    from cvpipe.data.exporters import export_dataset as _export

    return _export(dataset, format, out, **options)


def validate(dataset: str | Path, **options: Any) -> Any:
    """``cvpipe validate``: returns the validation report."""
    from cvpipe.data.validate import validate as _validate

    return _validate(dataset, **options)


def eda(dataset: str | Path, **options: Any) -> Any:
    """``cvpipe eda``: writes the EDA report and returns its summary."""
    from cvpipe.data.eda import eda as _eda

    return _eda(dataset, **options)


def split(dataset: str | Path, **options: Any) -> Any:
    """``cvpipe split``: seeded, stratified split written into the manifest."""
    from cvpipe.data.split import split as _split

    return _split(dataset, **options)


def balance(dataset: str | Path, **options: Any) -> Any:
    """``cvpipe balance``: resample classes into a new manifest."""
    from cvpipe.data.balance import balance as _balance

    return _balance(dataset, **options)


def demo_data(out: str | Path, **options: Any) -> Any:
    """``cvpipe demo-data``: generate the synthetic demo datasets."""
    from cvpipe.data.demo import generate as _generate

    return _generate(out, **options)


def train(
    dataset: str | Path, out: str | Path, *, overrides: list[str] | None = None, **config: Any
) -> Any:
    """``cvpipe train``: train into the run directory ``out``; returns the RunResult.

    Keyword options are TrainConfig keys (``model="resnet18", epochs=5``); ``overrides``
    takes ``--set`` style strings (``["optimizer.lr=0.002"]``). Without ``model`` the
    dataset task's default is used (:data:`cvpipe.engine.defaults.TASK_DEFAULTS`).

    Example:
        >>> cvpipe.train("datasets/bins", "runs/lite0", model="tf_efficientnet_lite0",
        ...              freeze="frozen", epochs=10)  # doctest: +SKIP
    """
    from cvpipe.config import load_config
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train as _train

    return _train(dataset, out, load_config(TrainConfig, overrides=overrides or [], values=config))


def evaluate(run: str | Path, **options: Any) -> Any:
    """``cvpipe eval``: evaluate a run; writes RUN/eval/ and returns the metrics."""
    from cvpipe.evaluation.evaluate import evaluate_run

    return evaluate_run(run, **options)


def compare(runs: list[str | Path], **options: Any) -> Any:
    """``cvpipe compare``: side-by-side metrics and paired tests of several runs."""
    from cvpipe.evaluation.compare import compare_runs

    return compare_runs(runs, **options)
