"""Health outputs: findings.json, report.html (rules table and plots), offline re-analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvpipe.engine.health.config import HealthConfig
from cvpipe.engine.health.report import analyse_run, summarise, write_outputs
from cvpipe.engine.health.trace import Trace
from cvpipe.errors import CvpipeError


def synthetic_trace() -> Trace:
    tr = Trace(
        meta={
            "classes": 3,
            "groups": ["a", "b"],
            "layers": [{"name": "a", "type": "linear"}],
            "steps_per_epoch": 20,
        }
    )
    for i in range(60):
        tr.add({"kind": "step", "s": i + 1, "e": i // 20 + 1, "loss": 1.1 * 0.97**i, "n": 8, "lr": 0.01,
                "data_s": 0.03 if i % 5 == 2 else 0.001, "compute_s": 0.01, "t": i * 0.02})  # fmt: skip
        if i % 5 == 0:
            tr.add({"kind": "sample", "s": i + 1, "grad": {"a": 0.1, "b": 0.2}, "weight": {"a": 2.0, "b": 1.0},
                    "update": {"a": 1e-3, "b": 2e-3}, "act": {"a": {"mean": 0.0, "std": 1.0, "zero": 0.0, "sat": None}}})  # fmt: skip
        tr.add(
            {
                "kind": "sys",
                "s": i + 1,
                "t": i * 0.02,
                "cpu": 50.0,
                "proc_cpu": 10.0,
                "ram": 40.0,
                "rss_mb": 300.0,
            }
        )
    for e in range(3):
        tr.add(
            {
                "kind": "epoch",
                "epoch": e + 1,
                "train.loss": 1.0 - 0.2 * e,
                "val.loss": 1.0 - 0.1 * e,
            }
        )
    return tr


def write_trace(run: Path, tr: Trace) -> None:
    rows = [{"kind": "meta", **tr.meta}, *tr.steps, *tr.samples, *tr.system, *tr.epochs]
    (run / "health").mkdir(parents=True, exist_ok=True)
    (run / "health" / "trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_findings_json_and_report_html(tmp_path: Path) -> None:
    res = write_outputs(tmp_path, synthetic_trace(), HealthConfig(report="on"))
    data = json.loads(res.findings_path.read_text())
    assert data["fired"] == ["StepOutlier"]
    row = next(r for r in data["rules"] if r["rule"] == "StepOutlier")
    assert row["triggered"] > 10 and row["datapoints"] == 59
    assert row["parameters"] == {
        "stddev": 3.0, "n_outliers": 10, "min_ratio": 1.5, "min_excess_s": 0.02, "skip_steps": 1,
    }  # fmt: skip
    assert {
        "rule",
        "description",
        "recommendation",
        "triggered",
        "datapoints",
        "parameters",
        "action",
    } <= set(row)
    html = res.report.read_text()
    for header in (
        "rule",
        "description",
        "recommendation",
        "times triggered",
        "data points",
        "parameters",
    ):
        assert f"<th>{header}</th>" in html
    assert "stddev:3.0 n_outliers:10" in html
    assert (
        html.count("data:image/png;base64,") >= 6
    )  # loss, grads, updates, activations, step hist+timeline, utilisation
    assert "http://" not in html and "https://" not in html


def test_reanalysis_with_other_thresholds(tmp_path: Path) -> None:
    write_trace(tmp_path, synthetic_trace())
    first = analyse_run(tmp_path, report=False)
    assert [f.rule for f in first.fired] == ["StepOutlier"]
    again = analyse_run(
        tmp_path, HealthConfig(rules={"StepOutlier": {"n_outliers": 100}}), report=False
    )
    assert again.fired == []
    assert json.loads((tmp_path / "health" / "findings.json").read_text())["fired"] == []


def test_summary_figures() -> None:
    s = summarise(synthetic_trace())
    assert s["steps"] == 60 and s["epochs"] == 3 and s["samples"] == 12
    assert 0.2 < s["data_wait_share"] < 0.5 and s["items_per_s"] > 0 and s["cpu_mean_pct"] == 50.0


def test_missing_or_torn_trace(tmp_path: Path) -> None:
    with pytest.raises(CvpipeError, match="no health trace"):
        analyse_run(tmp_path)
    write_trace(tmp_path, synthetic_trace())
    with open(tmp_path / "health" / "trace.jsonl", "a") as f:
        f.write('{"kind": "step", "s": 61, "lo')  # a killed run's last line
    assert len(Trace.read(tmp_path / "health" / "trace.jsonl").steps) == 60
    p = tmp_path / "bad.jsonl"
    p.write_text('{"kind": "meta"}\nnot json\n{"kind": "step", "s": 1}\n')
    with pytest.raises(CvpipeError, match=r"bad.jsonl:2"):
        Trace.read(p)


def test_nan_values_become_null_in_findings(tmp_path: Path) -> None:
    tr = synthetic_trace()
    tr.steps[0]["loss"] = float("nan")
    res = write_outputs(tmp_path, tr, HealthConfig(report="off"))
    json.loads(
        res.findings_path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")
    )
    assert res.report is None
