"""The training engine: loops, trainer, callbacks, checkpoints, run directories.

Heavy imports (torch, models) happen when a submodule is used, not on ``import cvpipe``.

Example:
    >>> from cvpipe.engine.trainer import train  # doctest: +SKIP
    >>> from cvpipe.engine.runs import RunDir, read_metrics  # doctest: +SKIP
"""
