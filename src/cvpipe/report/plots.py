"""Plots as PNG bytes, drawn with matplotlib's object API (no pyplot, no global state).

Each function builds a :class:`matplotlib.figure.Figure` attached to an Agg canvas,
draws, and returns the PNG file content, ready for :meth:`cvpipe.report.Report.image`.
Nothing here touches ``matplotlib.pyplot`` or the global backend, so importing this
module in a server or a notebook changes nothing.

Example:
    >>> png = bar(["cat", "dog"], [3, 5], title="images per class")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
_MAX_TICK_LABELS = 60


def new_figure(width: float = 6.4, height: float = 3.6) -> Figure:
    """A figure (inches at 100 dpi) bound to an Agg canvas; draw on ``fig.add_subplot()``."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _label_ticks(ax: Any, labels: Sequence[str], axis: str = "x") -> None:
    step = max(1, math.ceil(len(labels) / _MAX_TICK_LABELS))
    pos = list(range(0, len(labels), step))
    shown = [str(labels[i]) for i in pos]
    if axis == "y":
        ax.set_yticks(pos, shown)
        return
    long = max((len(s) for s in shown), default=0) > 4
    ax.set_xticks(pos, shown, rotation=45 if long else 0, ha="right" if long else "center")


def _decorate(ax: Any, title: str | None, xlabel: str | None, ylabel: str | None) -> None:
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def bar(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    annotate: bool = True,
) -> bytes:
    """A bar chart of one series (e.g. images per class), values written above the bars."""
    fig = new_figure(max(5.0, min(14.0, 0.35 * len(labels) + 3)), 3.6)
    ax = fig.add_subplot()
    x = list(range(len(labels)))
    bars = ax.bar(x, list(values), color="#4c72b0")
    if annotate and len(labels) <= 30:
        ax.bar_label(bars, fmt="%g", fontsize=8)
    _label_ticks(ax, labels)
    _decorate(ax, title, xlabel, ylabel)
    return to_png(fig)


def grouped_bar(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> bytes:
    """Side-by-side bars, one colour per series (e.g. images per class for each split)."""
    fig = new_figure(max(5.0, min(14.0, 0.5 * len(labels) + 3)), 3.6)
    ax = fig.add_subplot()
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, vals) in enumerate(series.items()):
        ax.bar(
            [j + (i - (n - 1) / 2) * width for j in range(len(labels))],
            list(vals),
            width,
            label=str(name),
        )
    _label_ticks(ax, labels)
    _decorate(ax, title, xlabel, ylabel)
    if series:
        ax.legend(fontsize=8)
    return to_png(fig)


def histogram(
    values: Sequence[float],
    *,
    bins: int | Sequence[float] = 30,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = "count",
    log_y: bool = False,
) -> bytes:
    """A histogram of ``values`` (an empty input gives an empty, labelled plot)."""
    fig = new_figure(5.6, 3.4)
    ax = fig.add_subplot()
    if len(values):
        ax.hist(
            list(values),
            bins=bins if isinstance(bins, int) else list(bins),
            color="#4c72b0",
            edgecolor="white",
        )
        if log_y:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    _decorate(ax, title, xlabel, ylabel)
    return to_png(fig)


def boxplots(
    groups: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    ylabel: str | None = None,
    panels: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> bytes:
    """Box plots, one box per group; ``panels`` draws several side by side instead.

    Args:
        groups: group name → values (used when ``panels`` is None).
        title: figure title.
        ylabel: y-axis label (each panel's title when ``panels`` is given).
        panels: panel title → (group name → values), e.g. ``{"width": ..., "height": ...}``.
    """
    items = dict(panels) if panels is not None else {ylabel or "": groups}
    n_groups = max((len(g) for g in items.values()), default=1)
    fig = new_figure(max(5.0, min(14.0, (0.45 * n_groups + 1.5) * len(items))), 3.8)
    axes = fig.subplots(1, len(items), squeeze=False)[0]
    for ax, (name, grp) in zip(axes, items.items(), strict=True):
        names = list(grp)
        data = [list(grp[k]) or [float("nan")] for k in names]
        if names:
            ax.boxplot(data, positions=list(range(len(names))), widths=0.6, showfliers=True)
            _label_ticks(ax, names)
        _decorate(ax, name if panels is not None else None, None, name if panels is None else None)
    if title:
        fig.suptitle(title)
    return to_png(fig)


def scatter(
    groups: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    max_points: int = 20000,
) -> bytes:
    """Scatter plot, one colour per group (``name → (xs, ys)``); large groups are thinned."""
    fig = new_figure(5.6, 4.0)
    ax = fig.add_subplot()
    total = sum(len(xs) for xs, _ in groups.values()) or 1
    step = max(1, total // max_points)
    for name, (xs, ys) in groups.items():
        ax.scatter(list(xs)[::step], list(ys)[::step], s=8, alpha=0.5, label=str(name))
    _decorate(ax, title, xlabel, ylabel)
    if 0 < len(groups) <= 20:
        ax.legend(fontsize=8, markerscale=2)
    return to_png(fig)


def lines(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    log_y: bool = False,
) -> bytes:
    """Line plot, one line per series (``name → (xs, ys)``): loss curves, PR curves."""
    fig = new_figure(5.6, 3.6)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), label=str(name), linewidth=1.5)
    if log_y:
        ax.set_yscale("log")
    _decorate(ax, title, xlabel, ylabel)
    if series:
        ax.legend(fontsize=8)
    return to_png(fig)


def heatmap(
    matrix: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    annotate: bool = True,
) -> bytes:
    """A matrix as coloured cells (e.g. a confusion matrix), values written in cells."""
    n_r, n_c = len(row_labels), len(col_labels)
    fig = new_figure(max(4.0, min(14.0, 0.5 * n_c + 2.5)), max(3.5, min(14.0, 0.45 * n_r + 2)))
    ax = fig.add_subplot()
    im = ax.imshow([list(r) for r in matrix], cmap="Blues", aspect="auto")
    fig.colorbar(im, ax=ax)
    _label_ticks(ax, col_labels, "x")
    _label_ticks(ax, row_labels, "y")
    if annotate and n_r * n_c <= 400:
        flat = [v for r in matrix for v in r]
        hi = max(flat) if flat else 0
        for i, r in enumerate(matrix):
            for j, v in enumerate(r):
                ax.text(
                    j,
                    i,
                    f"{v:g}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if hi and v > hi / 2 else "black",
                )
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return to_png(fig)
