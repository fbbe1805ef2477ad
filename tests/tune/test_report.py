"""Trials table order, CSV export and the self-contained HTML report."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import optuna
import pytest

from cvpipe.tune.report import build_report, importance, summarize, write_csv, write_html

D = optuna.distributions
STATES = optuna.trial.TrialState
T0 = dt.datetime(2022, 2, 21, 8, 35, 0)
DISTS = {
    "optimizer.lr": D.FloatDistribution(0.001, 0.1, log=True),
    "batch_size": D.CategoricalDistribution([16, 32, 64, 128, 256]),
    "head.hidden": D.CategoricalDistribution(["[128]", "[256, 64]"]),
}


def _study(direction: str = "minimize") -> optuna.Study:
    """Seed 001's four trials (plus a pruned, a failed and a skipped one) in memory."""
    study = optuna.create_study(direction=direction, study_name="seed001")
    study.set_user_attr(
        "cvpipe.objective", {"metric": "val.loss", "direction": direction, "reduce": "best"}
    )
    study.set_user_attr("cvpipe.max_trials", 6)
    rows = [
        (STATES.COMPLETE, 0.87, 0.059663, 128, "[128]", {}),
        (STATES.COMPLETE, 0.88, 0.007783, 64, "[256, 64]", {}),
        (STATES.COMPLETE, 0.44, 0.001948, 32, "[128]", {}),
        (STATES.COMPLETE, 1.96, 0.001545, 64, "[128]", {}),
        (STATES.PRUNED, 0.95, 0.09, 256, "[128]", {}),
        (STATES.FAIL, None, 0.05, 16, "[128]", {"error": "RuntimeError: boom"}),
        (
            STATES.FAIL,
            None,
            0.02,
            16,
            "[128]",
            {"skipped": "max_trials already used by other workers"},
        ),
    ]
    for i, (state, value, lr, bs, hidden, attrs) in enumerate(rows):
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params={"optimizer.lr": lr, "batch_size": bs, "head.hidden": hidden},
                distributions=DISTS,
                user_attrs={"run_dir": f"/runs/trial_{i:04d}", **attrs},
                intermediate_values={1: (value or 1.0) + 0.3, 2: value or 1.0}
                if value is not None
                else {},
            )
        )
    # fixed, readable times: trial i ran from T0 + 10 i min for 5 + i min
    for t in study.get_trials(deepcopy=False):
        t.datetime_start = T0 + dt.timedelta(minutes=10 * t.number)
        t.datetime_complete = t.datetime_start + dt.timedelta(minutes=5 + t.number)
    return study


def test_table_sorted_by_objective_then_pruned_then_the_rest() -> None:
    rows = summarize(_study("minimize"))
    assert [(r.number, r.state) for r in rows] == [
        (2, "COMPLETE"), (0, "COMPLETE"), (1, "COMPLETE"), (3, "COMPLETE"), (4, "PRUNED"), (5, "FAIL"),
    ]  # fmt: skip
    first = rows[0]
    assert first.params == {"optimizer.lr": 0.001948, "batch_size": 32, "head.hidden": [128]}
    assert first.run_dir == "/runs/trial_0002"
    assert first.note == ""
    assert rows[4].note == "pruned at epoch 2"
    assert rows[5].error == "RuntimeError: boom"
    assert [r.number for r in summarize(_study("maximize"))][:4] == [3, 1, 0, 2]
    assert 6 in [r.number for r in summarize(_study(), include_skipped=True)]


def test_interrupted_trial_is_labelled() -> None:
    study = _study()
    study.add_trial(
        optuna.trial.create_trial(
            state=STATES.FAIL,
            params={"batch_size": 32},
            distributions={"batch_size": DISTS["batch_size"]},
        )
    )
    study.add_trial(
        optuna.trial.create_trial(
            state=STATES.COMPLETE, value=0.5, params={"batch_size": 32},
            distributions={"batch_size": DISTS["batch_size"]}, user_attrs={"retry_of": 7, "retries": 1},
        )
    )  # fmt: skip
    notes = {r.number: r.note for r in summarize(study)}
    assert notes[7] == "interrupted (worker died)" and notes[8] == "retry of 7"


def test_csv_has_one_column_per_parameter(tmp_path: Path) -> None:
    path = write_csv(summarize(_study()), tmp_path / "results.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "number", "state", "objective", "optimizer.lr", "batch_size", "head.hidden",
        "start", "end", "duration_s", "run_dir", "note", "error",
    ]  # fmt: skip
    assert rows[0]["number"] == "2" and float(rows[0]["objective"]) == 0.44
    assert rows[0]["head.hidden"] == "[128]" and rows[0]["batch_size"] == "32"
    assert rows[0]["start"] == "2022-02-21 08:55:00" and rows[0]["duration_s"] == "420.0"
    assert rows[-1]["state"] == "FAIL" and rows[-1]["error"] == "RuntimeError: boom"
    assert rows[-1]["objective"] == ""


def test_html_report_is_self_contained_with_the_plots(tmp_path: Path) -> None:
    path = write_html(_study(), tmp_path / "report.html")
    html = path.read_text()
    assert "Tuning study seed001" in html and "minimize val.loss" in html
    images = re.findall(r'<img src="data:image/png;base64,', html)
    sections = re.findall(r"<h2>([^<]+)</h2>", html)
    assert sections == [
        "Summary", "Trials", "Optimization history", "Parallel coordinates",
        "Parameter importance", "Learning curves",
    ]  # fmt: skip
    assert len(images) == 4  # history, parallel coordinates, importance, curves
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "cvpipe train --from-trial seed001:best" in html
    assert "RuntimeError: boom" in html


def test_importance_needs_two_completed_trials() -> None:
    study = optuna.create_study()
    assert importance(study) is None
    imp = importance(_study())
    assert imp is not None and set(imp) == {"optimizer.lr", "batch_size", "head.hidden"}
    assert sum(imp.values()) == pytest.approx(1.0)


def test_report_of_an_empty_study_says_so() -> None:
    study = optuna.create_study(study_name="empty")
    html = build_report(study).to_html()
    assert "no trial has completed yet" in html
