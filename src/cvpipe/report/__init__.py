"""Self-contained HTML reports and the plots they embed, shared by eda, eval, health and tune.

- :class:`~cvpipe.report.html.Report` builds one HTML file with inline CSS and images
  embedded as base64 PNG data URIs: no CDN, no external file, it opens offline.
- :mod:`cvpipe.report.plots` draws matplotlib figures (Agg, no pyplot state) and returns
  PNG bytes ready for :meth:`Report.image`.

Example:
    >>> from cvpipe.report import Report, plots
    >>> r = Report("Class balance")
    >>> _ = r.section("Counts").table(["class", "images"], [["cat", 3], ["dog", 5]])
    >>> _ = r.image(plots.bar(["cat", "dog"], [3, 5], title="images per class"), "per class")
    >>> r.save(tmp / "report.html")  # doctest: +SKIP
"""

from __future__ import annotations

from cvpipe.report.html import Report

__all__ = ["Report"]
