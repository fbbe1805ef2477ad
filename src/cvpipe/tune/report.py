"""The results of a study: the trials table, CSV export and a self-contained HTML report.

The table is the one the reference projects read from their cloud tuner: number,
parameters, state, objective, start, end and duration, sorted by objective (completed
trials best first, then pruned ones, then the rest by number). The HTML report
(:class:`cvpipe.report.Report`) embeds matplotlib PNGs: optimization history, parallel
coordinates, parameter importance (``optuna.importance``; no plotly, no CDN) and the
per-epoch objective of every trial.

Example:
    >>> rows = summarize(study)  # doctest: +SKIP
    >>> write_csv(rows, "tune/results.csv")  # doctest: +SKIP
    >>> write_html(study, "tune/report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from cvpipe.io import atomic_open
from cvpipe.report import Report
from cvpipe.report.plots import new_figure, to_png

log = logging.getLogger(__name__)

_ORDER = {"COMPLETE": 0, "PRUNED": 1}


@dataclass
class TrialRow:
    """One row of the trials table."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    start: _dt.datetime | None
    end: _dt.datetime | None
    duration_s: float | None
    run_dir: str | None
    error: str | None
    note: str
    host: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number, "state": self.state, "objective": self.value, "params": self.params,
            "start": _iso(self.start), "end": _iso(self.end), "duration_s": self.duration_s,
            "run_dir": self.run_dir, "error": self.error, "note": self.note, "host": self.host,
        }  # fmt: skip


def _iso(t: _dt.datetime | None) -> str | None:
    return t.isoformat(sep=" ", timespec="seconds") if t else None


def _params(t: Any) -> dict[str, Any]:
    """Parameters for display: JSON-encoded categorical choices decoded back."""
    out = {}
    for k, v in t.params.items():
        if isinstance(v, str) and v[:1] in "[{":
            with contextlib.suppress(ValueError):
                v = json.loads(v)
        out[k] = v
    return out


def _note(t: Any) -> str:
    a = t.user_attrs
    notes = []
    if t.state.name == "PRUNED" and t.last_step is not None:
        notes.append(f"pruned at epoch {t.last_step}")
    if "retry_of" in a:
        notes.append(f"retry of {a['retry_of']}")
    if "warm_start_from" in a:
        notes.append(f"warm start from {a['warm_start_from']}")
    if t.state.name == "FAIL" and "error" not in a and "skipped" not in a:
        notes.append("interrupted (worker died)")
    if "skipped" in a:
        notes.append(f"skipped: {a['skipped']}")
    return "; ".join(notes)


def summarize(study: Any, include_skipped: bool = False) -> list[TrialRow]:
    """The trials table of ``study``, sorted by objective.

    Args:
        study: an ``optuna.Study``.
        include_skipped: keep trials skipped because other workers used the last slots.
    """
    maximize = study.direction.name == "MAXIMIZE"
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "skipped" in t.user_attrs and not include_skipped:
            continue
        end = t.datetime_complete
        dur = (end - t.datetime_start).total_seconds() if end and t.datetime_start else None
        rows.append(
            TrialRow(
                t.number, t.state.name, t.value, _params(t), t.datetime_start, end, dur,
                t.user_attrs.get("run_dir"), t.user_attrs.get("error"), _note(t), t.user_attrs.get("host"),
            )
        )  # fmt: skip

    def key(r: TrialRow) -> tuple[int, float, int]:
        rank = _ORDER.get(r.state)
        if rank is None or r.value is None or math.isnan(r.value):
            return (2, 0.0, r.number)
        return (rank, -r.value if maximize else r.value, r.number)

    return sorted(rows, key=key)


def param_names(rows: Sequence[TrialRow]) -> list[str]:
    names: list[str] = []
    for r in rows:
        names += [k for k in r.params if k not in names]
    return names


def write_csv(rows: Sequence[TrialRow], path: str | Path) -> Path:
    """Write the trials table as CSV (one column per parameter), atomically."""
    names = param_names(rows)
    path = Path(path)
    with atomic_open(path, "w") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "number",
                "state",
                "objective",
                *names,
                "start",
                "end",
                "duration_s",
                "run_dir",
                "note",
                "error",
            ]
        )
        for r in rows:
            w.writerow(
                [r.number, r.state, "" if r.value is None else repr(r.value)]
                + [_cell(r.params.get(n)) for n in names]
                + [
                    _iso(r.start) or "",
                    _iso(r.end) or "",
                    "" if r.duration_s is None else f"{r.duration_s:.1f}",
                ]
                + [r.run_dir or "", r.note, r.error or ""]
            )
    return path


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


# ------------------------------------------------------------------------- plots
def history_plot(study: Any, rows: Sequence[TrialRow], metric: str) -> bytes:
    """Objective of each trial by number, with the best-so-far line."""
    maximize = study.direction.name == "MAXIMIZE"
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    done = sorted(
        (r for r in rows if r.value is not None and r.state in _ORDER), key=lambda r: r.number
    )
    for state, colour in (("COMPLETE", "#4c72b0"), ("PRUNED", "#c0c0c0")):
        pts = [(r.number, float(r.value)) for r in done if r.state == state and r.value is not None]
        if pts:
            ax.scatter(
                [p[0] for p in pts], [p[1] for p in pts], c=colour, label=state.lower(), zorder=3
            )
    best: list[tuple[int, float]] = []
    for r in done:
        if r.state != "COMPLETE" or r.value is None:
            continue
        if not best or (r.value > best[-1][1] if maximize else r.value < best[-1][1]):
            best.append((r.number, r.value))
        else:
            best.append((r.number, best[-1][1]))
    if best:
        ax.step(
            [b[0] for b in best],
            [b[1] for b in best],
            where="post",
            color="#dd8452",
            label="best so far",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("Optimization history")
    ax.grid(True, alpha=0.3)
    if done:
        ax.legend(fontsize=8)
    return to_png(fig)


def _axis(study: Any, name: str, values: list[Any]) -> tuple[list[float], list[str], list[float]]:
    """Normalised positions of ``values`` on a parameter axis, with tick labels."""
    dist = None
    for t in study.get_trials(deepcopy=False):
        if name in t.distributions:
            dist = t.distributions[name]
            break
    choices = getattr(dist, "choices", None)
    if choices is not None:
        n = max(1, len(choices) - 1)
        pos = [choices.index(v) / n if v in choices else 0.0 for v in values]
        return pos, [str(c) for c in choices], [i / n for i in range(len(choices))]
    log_scale = bool(getattr(dist, "log", False))
    xs = [math.log10(v) if log_scale else float(v) for v in values]
    lo = getattr(dist, "low", min(values))
    hi = getattr(dist, "high", max(values))
    lo, hi = (math.log10(lo), math.log10(hi)) if log_scale else (float(lo), float(hi))
    span = (hi - lo) or 1.0
    ticks = [lo, (lo + hi) / 2, hi]
    labels = [f"{(10**t if log_scale else t):.3g}" for t in ticks]
    return [(x - lo) / span for x in xs], labels, [(t - lo) / span for t in ticks]


def parallel_plot(study: Any, rows: Sequence[TrialRow], metric: str) -> bytes | None:
    """Parallel coordinates: one polyline per finished trial across parameters and objective."""
    done = [r for r in rows if r.value is not None and r.state in _ORDER]
    names = param_names(done)
    if len(done) < 2 or not names:
        return None
    raw = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    fig = new_figure(max(5.0, 1.6 * (len(names) + 1)), 3.8)
    ax = fig.add_subplot()
    columns: list[list[float]] = []
    labels_x: list[str] = []
    for name in names:
        vals = [raw[r.number].get(name) for r in done]
        present = [v for v in vals if v is not None]
        if not present:
            continue
        pos, labels, ticks = _axis(study, name, [v if v is not None else present[0] for v in vals])
        columns.append(pos)
        labels_x.append(name)
        for tk, lb in zip(ticks, labels, strict=True):
            ax.text(len(columns) - 1 + 0.03, tk, lb, fontsize=7, va="center")
    objs = [float(r.value) for r in done if r.value is not None]
    lo, hi = min(objs), max(objs)
    columns.append([(v - lo) / ((hi - lo) or 1.0) for v in objs])
    for tk, lb in ((0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")):
        ax.text(len(columns) - 1 + 0.03, tk, lb, fontsize=7, va="center")
    from matplotlib import colormaps

    cmap = colormaps["viridis" if study.direction.name == "MINIMIZE" else "viridis_r"]
    for j in range(len(done)):
        ys = [c[j] for c in columns]
        ax.plot(range(len(columns)), ys, color=cmap(columns[-1][j]), alpha=0.8, linewidth=1.4)
    for x in range(len(columns)):
        ax.axvline(x, color="#888888", linewidth=0.8)
    ax.set_xticks(range(len(columns)), [*labels_x, metric], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(columns) - 0.6)
    ax.set_title("Parallel coordinates (colour: objective, darker is better)")
    return to_png(fig)


def importance(study: Any) -> dict[str, float] | None:
    """Parameter importances (fANOVA via ``optuna.importance``), or None when not computable."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError) as exc:  # e.g. every trial drew the same values
        log.info("parameter importance not computable: %s", exc)
        return None


def importance_plot(values: dict[str, float]) -> bytes:
    fig = new_figure(5.6, max(2.0, 0.45 * len(values) + 1.2))
    ax = fig.add_subplot()
    items = sorted(values.items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
    ax.set_xlabel("importance (fANOVA, normalised)")
    ax.set_title("Parameter importance")
    ax.grid(True, axis="x", alpha=0.3)
    return to_png(fig)


def curves_plot(study: Any, metric: str, limit: int = 30) -> bytes | None:
    """The objective after each epoch of every trial (where pruning decided)."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values][:limit]
    if not trials:
        return None
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    for t in trials:
        steps = sorted(t.intermediate_values)
        style = "--" if t.state.name == "PRUNED" else "-"
        ax.plot(
            steps,
            [t.intermediate_values[s] for s in steps],
            style,
            linewidth=1.2,
            label=f"#{t.number}",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title("Objective per epoch (dashed: pruned)")
    ax.grid(True, alpha=0.3)
    if len(trials) <= 12:
        ax.legend(fontsize=7, ncol=2)
    return to_png(fig)


def build_report(study: Any, rows: Sequence[TrialRow] | None = None) -> Report:
    """The HTML report of a study (summary, best trial, table, plots)."""
    rows = list(rows) if rows is not None else summarize(study)
    obj = study.user_attrs.get("cvpipe.objective", {})
    metric = obj.get("metric", "objective")
    direction = study.direction.name.lower()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    rep = Report(f"Tuning study {study.study_name}", subtitle=f"{direction} {metric}")
    rep.section("Summary").metrics(
        {"trials": len(rows), **{s.lower(): n for s, n in sorted(counts.items())},
         "budget": study.user_attrs.get("cvpipe.max_trials")}
    )  # fmt: skip
    best = next((r for r in rows if r.state == "COMPLETE"), None)
    if best is not None:
        rep.metrics({metric: best.value, "trial": best.number, **best.params}, caption="best trial")
        if best.run_dir:
            rep.code(
                f"cvpipe train --from-trial {study.study_name}:best --set epochs=... --out runs/best\n# run dir: {best.run_dir}"
            )
    else:
        rep.note("no trial has completed yet", level="warning")
    names = param_names(rows)
    rep.section("Trials").table(
        ["#", *names, "state", metric, "start", "end", "duration (s)", "note"],
        [[r.number, *[_cell(r.params.get(n)) or None for n in names], r.state, r.value,
          _iso(r.start), _iso(r.end), None if r.duration_s is None else round(r.duration_s, 1), r.note]
         for r in rows],
        caption="sorted by objective",
    )  # fmt: skip
    failed = [r for r in rows if r.error]
    if failed:
        rep.table(["#", "error"], [[r.number, r.error] for r in failed], caption="failed trials")
    rep.section("Optimization history").image(history_plot(study, rows, metric))
    par = parallel_plot(study, rows, metric)
    if par is not None:
        rep.section("Parallel coordinates").image(par)
    imp = importance(study)
    rep.section("Parameter importance")
    if imp:
        rep.image(importance_plot(imp))
    else:
        rep.note("needs at least two completed trials with different parameter values")
    cur = curves_plot(study, metric)
    if cur is not None:
        rep.section("Learning curves").image(cur)
    return rep


def write_html(study: Any, path: str | Path, rows: Sequence[TrialRow] | None = None) -> Path:
    """Write the study's HTML report atomically; returns the path."""
    return build_report(study, rows).save(path)
