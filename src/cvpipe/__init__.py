"""cvpipe: a local-first pipeline from a labelled image set to a served model.

The Python API mirrors the command line verbs; heavy dependencies (torch, optuna,
fastapi) are imported only by the modules that need them.

Example:
    >>> import cvpipe
    >>> ds = cvpipe.import_dataset("voc", "raw/annotations", out="datasets/burgers")  # doctest: +SKIP
    >>> cvpipe.split(ds.root, ratios="80/20", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from cvpipe.api import (
    balance,
    compare,
    demo_data,
    eda,
    evaluate,
    export_dataset,
    import_dataset,
    load_dataset,
    split,
    train,
    validate,
)
from cvpipe.errors import CvpipeError
from cvpipe.version import __version__

__all__ = [
    "CvpipeError",
    "__version__",
    "balance",
    "compare",
    "demo_data",
    "eda",
    "evaluate",
    "export_dataset",
    "import_dataset",
    "load_dataset",
    "split",
    "train",
    "validate",
]
