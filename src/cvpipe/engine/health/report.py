"""Health outputs of a run: ``health/findings.json`` and ``health/report.html``.

:func:`write_outputs` runs the rules on a trace and writes both files; :func:`analyse_run`
does the same offline from ``RUN/health/trace.jsonl`` (``cvpipe health RUN``), with other
thresholds if asked. The report shows the rules table of the seeds' profiler reports
(rule, description, recommendation, times triggered, data points, parameters), then loss
curves, gradient norms per layer group, update ratios, activation spread per layer, the
step-time histogram and timeline with outliers marked, and the utilisation timeline.

Example:
    >>> res = analyse_run("runs/a", load_config(HealthConfig, overrides=["rules.StepOutlier.stddev=4"]))  # doctest: +SKIP
    >>> [f.rule for f in res.findings if f.fired]  # doctest: +SKIP
    ['StepOutlier']
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.engine.health.config import HealthConfig
from cvpipe.engine.health.profiler_rules import StepOutlier, step_outliers
from cvpipe.engine.health.rule_base import Finding
from cvpipe.engine.health.rules import evaluate_rules
from cvpipe.engine.health.trace import Trace
from cvpipe.io import write_json

FINDINGS = "findings.json"
REPORT = "report.html"
TRACE = "trace.jsonl"


@dataclass
class HealthResult:
    """What :func:`write_outputs` / :func:`analyse_run` produced."""

    findings: list[Finding]
    summary: dict[str, Any]
    findings_path: Path
    report: Path | None

    @property
    def fired(self) -> list[Finding]:
        return [f for f in self.findings if f.fired]


def summarise(trace: Trace) -> dict[str, Any]:
    """Key figures of a trace: steps, epochs, step time, data-wait share, throughput."""
    data, comp = Trace.column(trace.steps, "data_s"), Trace.column(trace.steps, "compute_s")
    total = data + comp
    n_items = Trace.column(trace.steps, "n")
    out: dict[str, Any] = {"steps": len(trace.steps), "epochs": len(trace.epochs)}
    if len(trace.steps):
        out["mean_step_s"] = float(np.nanmean(total))
        out["median_step_s"] = float(np.nanmedian(total))
        out["data_wait_share"] = float(np.nansum(data) / max(np.nansum(total), 1e-12))
        out["items_per_s"] = float(np.nansum(n_items) / max(np.nansum(total), 1e-12))
        loss = Trace.column(trace.steps, "loss")
        out["first_loss"], out["last_loss"] = float(loss[0]), float(loss[-1])
    for key in ("cpu", "gpu", "gpu_mem"):
        vals = [r[key] for r in trace.system if r.get(key) is not None]
        if vals:
            out[f"{key}_mean_pct"] = float(np.mean(vals))
    out["samples"] = len(trace.samples)
    return out


def write_outputs(
    run_dir: str | Path,
    trace: Trace,
    config: HealthConfig | None = None,
    *,
    stop_reason: str | None = None,
    report: bool | None = None,
) -> HealthResult:
    """Evaluate the rules on ``trace`` and write ``RUN/health/findings.json`` and
    ``report.html``, atomically.

    Args:
        report: write report.html (default: per ``config.report``; ``auto`` writes it when
            the recorded steps took at least ``config.report_min_s`` seconds).

    Returns:
        A :class:`HealthResult`.
    """
    config = config or HealthConfig()
    out = Path(run_dir) / "health"
    findings = evaluate_rules(trace, config.rules)
    summary = summarise(trace)
    payload = {
        "run": str(Path(run_dir)),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fired": [f.rule for f in findings if f.fired],
        "stop_reason": stop_reason,
        "events": trace.events,
        "summary": summary,
        "config": config.model_dump(mode="json"),
        "rules": [f.to_json() for f in findings],
    }
    write_json(out / FINDINGS, _clean(payload))
    if report is None:
        busy = float(np.nansum(trace.step_time)) if trace.steps else 0.0
        report = config.report == "on" or (config.report == "auto" and busy >= config.report_min_s)
    path = None
    if report:
        path = build_report(
            trace, findings, summary, title=f"Training health of {Path(run_dir).name}"
        ).save(out / REPORT)
    return HealthResult(findings, summary, out / FINDINGS, path)


def analyse_run(
    run: str | Path, config: HealthConfig | None = None, *, report: bool = True
) -> HealthResult:
    """Re-run the rules on a finished run's ``health/trace.jsonl`` and rewrite its outputs.

    Raises:
        CvpipeError: the run has no health trace.
    """
    trace = Trace.read(Path(run) / "health" / TRACE)
    stop = next((e.get("message") for e in trace.events if e.get("what") == "stopped"), None)
    return write_outputs(run, trace, config, stop_reason=stop, report=report)


def _clean(obj: Any) -> Any:
    """NaN/Inf → None so findings.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def params_text(params: dict[str, Any]) -> str:
    """``k:v`` pairs as in the seeds' tables (``threshold:3 n_outliers:10``)."""
    return " ".join(f"{k}:{v}" for k, v in params.items())


# ------------------------------------------------------------------------- HTML report
def build_report(trace: Trace, findings: list[Finding], summary: dict[str, Any], title: str) -> Any:
    """The :class:`~cvpipe.report.html.Report` of a run's health."""
    from cvpipe.report.html import Report

    r = Report(
        title, subtitle=f"{summary.get('steps', 0)} steps, {summary.get('epochs', 0)} epochs"
    )
    fired = [f for f in findings if f.fired]
    r.section("Summary").metrics({
        "rules fired": len(fired), "rules checked": len(findings), "steps": summary.get("steps"),
        "mean step (s)": summary.get("mean_step_s"), "data wait share": summary.get("data_wait_share"),
        "items/s": summary.get("items_per_s"),
    })  # fmt: skip
    if fired:
        r.note("Fired: " + ", ".join(f"{f.rule} ({f.triggered}×)" for f in fired), level="warning")
    else:
        r.note("No rule fired.", level="ok")
    for ev in trace.events:
        r.note(f"{ev.get('what')} at step {ev.get('s')}: {ev.get('message')}", level="error")
    r.section("Rules").table(
        ["rule", "description", "recommendation", "times triggered", "data points", "parameters"],
        [
            [
                f.rule,
                f.description,
                f.recommendation,
                f.triggered,
                f.datapoints,
                params_text(f.parameters),
            ]
            for f in findings
        ],
    )
    for f in fired:
        r.text(f"{f.rule}: " + "; ".join(f.messages))
    _plots(r, trace)
    return r


def _plots(r: Any, trace: Trace) -> None:
    from cvpipe.report import plots

    if trace.steps:
        r.section("Loss")
        s = Trace.column(trace.steps, "s").tolist()
        series: dict[str, tuple[list[float], list[float]]] = {
            "train loss per step": (s, Trace.column(trace.steps, "loss").tolist())
        }
        spe = trace.meta.get("steps_per_epoch") or 1
        for key in ("train.loss", "val.loss"):
            pts = [(e["epoch"] * spe, e[key]) for e in trace.epochs if e.get(key) is not None]
            if pts:
                series[f"{key} (epoch)"] = ([p[0] for p in pts], [p[1] for p in pts])
        r.image(
            plots.lines(series, title="loss", xlabel="step", ylabel="loss"),
            "loss per step and per epoch",
        )
    if trace.samples:
        r.section("Gradients and weights")
        for key, label in (("grad", "gradient norm"), ("update", "update / weight ratio")):
            groups = _group_series(trace, key)
            if groups:
                r.image(
                    plots.lines(
                        groups,
                        title=f"{label} per layer group",
                        xlabel="step",
                        ylabel=label,
                        log_y=True,
                    ),
                    label,
                )
        first, last = _act_profile(trace, trace.samples[0]), _act_profile(trace, trace.samples[-1])
        if first:
            xs = list(range(len(first)))
            r.image(
                plots.lines({f"step {trace.samples[0]['s']}": (xs, list(first.values())),
                             f"step {trace.samples[-1]['s']}": (xs, [last.get(k, float('nan')) for k in first])},
                            title="activation std per layer (model order)", xlabel="layer", ylabel="std", log_y=True),
                "activation spread per hooked layer: " + ", ".join(first)[:400],
            )  # fmt: skip
    if trace.steps:
        r.section("Step time")
        _step_time(r, trace)
    if trace.system:
        r.section("Utilisation")
        t = Trace.column(trace.system, "t").tolist()
        util: dict[str, tuple[list[float], list[float]]] = {}
        for key, label in (
            ("cpu", "CPU %"),
            ("ram", "RAM %"),
            ("gpu", "GPU %"),
            ("gpu_mem", "GPU memory %"),
        ):
            v = Trace.column(trace.system, key)
            if np.isfinite(v).any():
                util[label] = (t, v.tolist())
        r.image(
            plots.lines(util, title="utilisation", xlabel="seconds", ylabel="%"),
            "machine CPU/RAM and GPU over time",
        )


def _group_series(trace: Trace, key: str) -> dict[str, tuple[list[float], list[float]]]:
    out: dict[str, tuple[list[float], list[float]]] = {}
    for smp in trace.samples:
        for g, v in (smp.get(key) or {}).items():
            if v is not None and math.isfinite(v) and v > 0:
                xs, ys = out.setdefault(g, ([], []))
                xs.append(smp["s"])
                ys.append(v)
    return out


def _act_profile(trace: Trace, sample: dict[str, Any]) -> dict[str, float]:
    return {
        n: float(st["std"])
        for n, st in (sample.get("act") or {}).items()
        if st.get("std") is not None
    }


def _step_time(r: Any, trace: Trace) -> None:
    from cvpipe.report import plots

    s = Trace.column(trace.steps, "s")
    data, comp = Trace.column(trace.steps, "data_s"), Trace.column(trace.steps, "compute_s")
    total = data + comp
    d = StepOutlier.defaults
    idx, limit = step_outliers(total, d["stddev"], d["min_ratio"], d["min_excess_s"])
    r.image(plots.histogram(total[np.isfinite(total)].tolist(), bins=40, title="step time", xlabel="seconds", log_y=True),
            "step time histogram (data wait + compute)")  # fmt: skip
    fig = plots.new_figure(7.5, 3.4)
    ax = fig.add_subplot()
    ax.plot(s, total, linewidth=0.8, label="step")
    ax.plot(s, data, linewidth=0.8, label="data wait")
    if len(idx):
        ax.scatter(
            s[idx], total[idx], color="#cf222e", s=18, zorder=3, label=f"outliers ({len(idx)})"
        )
    if math.isfinite(limit):
        ax.axhline(limit, color="#cf222e", linestyle=":", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("seconds")
    ax.set_title("step time timeline")
    ax.legend(fontsize=8)
    r.image(
        plots.to_png(fig), f"outliers: beyond median + 3σ (robust) and 1.5× median ({limit:.3g} s)"
    )
