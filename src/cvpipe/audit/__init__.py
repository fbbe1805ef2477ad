"""Dataset audit: near-duplicates and split leaks, likely label errors, outliers, an
image-size shortcut and (with a detector run) disputed boxes.

Embeddings come from the frozen-feature cache (:mod:`cvpipe.engine.features`), nearest
neighbours are exact (scikit-learn), label errors are found by confident learning
(cleanlab) on out-of-sample probabilities. Needs ``pip install 'cvpipe[audit]'``.

- :mod:`~cvpipe.audit.config`: :class:`AuditConfig`;
- :mod:`~cvpipe.audit.embeddings`, :mod:`~cvpipe.audit.neighbors`,
  :mod:`~cvpipe.audit.labels`, :mod:`~cvpipe.audit.outliers`,
  :mod:`~cvpipe.audit.shortcut`, :mod:`~cvpipe.audit.detections`: one finding each;
- :mod:`~cvpipe.audit.scan`: :func:`audit` runs them and writes ``audit.json``;
- :mod:`~cvpipe.audit.report`: ``report.html``; :mod:`~cvpipe.audit.fix`: ``--fix OUT``.

Example:
    >>> from cvpipe.audit import audit  # doctest: +SKIP
    >>> audit("datasets/weather").summary["leak_groups"]  # doctest: +SKIP
"""

from __future__ import annotations

from cvpipe.audit.config import AuditConfig

__all__ = ["AuditConfig"]
