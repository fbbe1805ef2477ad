"""The tuner: trials are runs, failures are recorded, checks come first, studies resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from tunedata import base_train

from cvpipe.config import load_config
from cvpipe.engine import trainer as trainer_mod
from cvpipe.engine.callbacks import TrainState
from cvpipe.engine.config import TrainConfig
from cvpipe.errors import ConfigError, DatasetError
from cvpipe.tune import storage as S
from cvpipe.tune.trial import (
    ObjectiveNotRecorded,
    TrialFailed,
    TrialReporter,
    budget_used,
    objective_value,
)
from cvpipe.tune.tuner import tune

STATES = optuna.trial.TrialState


def _study(out: Path) -> optuna.Study:
    return S.load_study(S.resolve_study(str(out)))


def test_trials_are_run_directories_sharing_the_feature_cache(make_tune, tmp_path: Path) -> None:
    cfg = make_tune(max_trials=3, report=True)
    seen = []
    result = tune(cfg, on_trial=lambda t: seen.append(t.number))
    assert seen == [0, 1, 2]
    assert result.counts.get("COMPLETE", 0) + result.counts.get("PRUNED", 0) == 3
    study = _study(cfg.out)
    caches = []
    for t in study.trials:
        run = Path(t.user_attrs["run_dir"])
        assert run == (tmp_path / "out" / "trials" / f"trial_{t.number:04d}").resolve()
        for name in ("config.yaml", "metrics.jsonl", "model_card.json", "checkpoints/last.pt"):
            assert (run / name).is_file(), (t.number, name)
        # the run's config is the base with this trial's parameters
        run_cfg = load_config(TrainConfig, run / "config.yaml")
        assert run_cfg.optimizer.lr == pytest.approx(t.params["optimizer.lr"])
        assert run_cfg.batch_size == t.params["batch_size"]
        assert t.user_attrs["config"] == run_cfg.model_dump(mode="json")
        caches.append(json.loads((run / "model_card.json").read_text())["extra"]["feature_cache"])
    assert caches[0] == "miss" and caches[1:] == ["hit", "hit"]
    assert result.best is not None and result.best.state == "COMPLETE"
    assert result.csv.is_file() and result.report.is_file()
    meta = json.loads((tmp_path / "out" / "tune.json").read_text())
    assert meta["study"] == "out" and meta["storage"].startswith("sqlite:///")


def test_checks_fail_before_any_trial(make_tune, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="never records 'val.acc'; did you mean 'val.accuracy'"):
        tune(make_tune(objective={"metric": "val.acc"}))
    with pytest.raises(ConfigError, match="space.optimizer.lrate: unknown key 'lrate'"):
        tune(make_tune(space={"optimizer.lrate": [0.1, 0.2]}))
    with pytest.raises(ConfigError, match="space.batch_size: the value 0"):
        tune(make_tune(space={"batch_size": [0, 8]}))
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        tune(make_tune(train=base_train(tmp_path, epoch=3)))
    with pytest.raises(ConfigError, match="did you mean"):
        tune(make_tune(space={"model": ["base_cnn", "resnet_18"]}))
    with pytest.raises(DatasetError):
        tune(make_tune(dataset=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="step"):
        tune(make_tune(strategy="grid"))
    assert not out.exists()  # nothing was created, no trial ran


def test_a_failing_trial_is_recorded_and_the_study_goes_on(
    make_tune, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = trainer_mod.train
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "train", flaky)
    cfg = make_tune(max_trials=3, pruning={"enabled": False})
    result = tune(cfg)
    assert result.counts == {"COMPLETE": 2, "FAIL": 1}
    study = _study(cfg.out)
    failed = [t for t in study.trials if t.state == STATES.FAIL]
    assert [t.number for t in failed] == [1]
    assert failed[0].user_attrs["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert budget_used(study) == 3


def test_objective_value_best_last_and_errors() -> None:
    rows = [
        {"epoch": 1, "val.loss": 0.9},
        {"epoch": 2, "val.loss": 0.5},
        {"epoch": 3, "val.loss": 0.7},
    ]
    assert objective_value(rows, "val.loss", "minimize", "best") == 0.5
    assert objective_value(rows, "val.loss", "maximize", "best") == 0.9
    assert objective_value(rows, "val.loss", "minimize", "last") == 0.7
    with pytest.raises(ObjectiveNotRecorded, match="'val.mAP' is not recorded.*val.loss"):
        objective_value(rows, "val.mAP", "maximize", "best")
    with pytest.raises(TrialFailed, match="NaN"):
        objective_value([{"epoch": 1, "val.loss": float("nan")}], "val.loss", "minimize", "best")
    with pytest.raises(TrialFailed, match="no epoch"):
        objective_value([], "val.loss", "minimize", "best")


class _FakeTrial:
    def __init__(self, prune: bool) -> None:
        self.reports: list[tuple[float, int]] = []
        self._prune = prune

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self._prune


def _state() -> TrainState:
    return TrainState(Path("."), None, "classify", None, None, 3, 1)  # type: ignore[arg-type]


def test_reporter_reports_each_epoch_and_stops_a_pruned_run() -> None:
    trial, state = _FakeTrial(prune=False), _state()
    rep = TrialReporter(trial, "val.loss", prune=True)
    rep.on_epoch_end(state, {"epoch": 1, "val.loss": 0.8})
    assert trial.reports == [(0.8, 1)] and not state.stop and rep.pruned_at is None
    trial._prune = True
    rep.on_epoch_end(state, {"epoch": 2, "val.loss": 0.9})
    assert state.stop and rep.pruned_at == 2 and "pruned" in state.stop_reason
    with pytest.raises(ObjectiveNotRecorded, match="recorded: val.loss"):
        TrialReporter(trial, "val.mAP", prune=False).on_epoch_end(
            _state(), {"epoch": 1, "val.loss": 1.0}
        )


def test_objective_missing_from_the_run_stops_the_study(make_tune, monkeypatch) -> None:
    """A task whose metrics tune does not list (detection later) is checked at the first epoch."""
    from cvpipe.tasks.classify import ClassifyTask

    monkeypatch.setattr(ClassifyTask, "recorded_metrics", {})
    cfg = make_tune(objective={"metric": "val.mAP", "direction": "maximize"}, max_trials=3)
    with pytest.raises(ObjectiveNotRecorded, match="'val.mAP' is not recorded"):
        tune(cfg)
    study = _study(cfg.out)
    assert len(study.trials) == 1 and study.trials[0].state == STATES.FAIL


def test_resume_continues_numbering_and_keeps_completed_trials(make_tune) -> None:
    first = tune(make_tune(max_trials=2, pruning={"enabled": False}))
    study = _study(first.out)
    before = {t.number: (t.value, t.datetime_complete) for t in study.trials}
    tune(make_tune(max_trials=3, pruning={"enabled": False}))
    study = _study(first.out)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert all(t.state == STATES.COMPLETE for t in study.trials)
    assert {n: (t.value, t.datetime_complete) for n, t in enumerate(study.trials[:2])} == before
    # the same command once more: the budget is used, nothing runs
    tune(make_tune(max_trials=3, pruning={"enabled": False}))
    assert len(_study(first.out).trials) == 3


def test_a_trial_of_a_dead_process_is_failed_and_retried(make_tune) -> None:
    cfg = make_tune(max_trials=2, pruning={"enabled": False})
    tune(load_config(type(cfg), values={**cfg.model_dump(), "max_trials": 1}))
    study = _study(cfg.out)
    # a trial left RUNNING by a process that no longer exists (kill -9)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask({"optimizer.lr": optuna.distributions.FloatDistribution(0.001, 0.1, log=True),
                       "batch_size": optuna.distributions.CategoricalDistribution([4, 8, 16])})  # fmt: skip
    for k, v in S.worker_identity().items():
        trial.set_user_attr(k, v)
    trial.set_user_attr("pid", dead.pid)
    tune(cfg)
    trials = _study(cfg.out).trials
    assert [t.state for t in trials] == [STATES.COMPLETE, STATES.FAIL, STATES.COMPLETE]
    assert trials[2].user_attrs["retry_of"] == 1
    assert trials[2].params == trials[1].params  # the interrupted parameters, tried again
    assert "error" not in trials[1].user_attrs


def test_an_orphan_trial_is_failed_after_the_grace_period(make_tune) -> None:
    """A process killed between creating a trial and starting it leaves no pid, no heartbeat."""
    cfg = make_tune(max_trials=2, pruning={"enabled": False}, heartbeat_s=1, grace_s=1)
    tune(load_config(type(cfg), values={**cfg.model_dump(), "max_trials": 1}))
    _study(cfg.out).ask()  # RUNNING, nothing recorded
    time.sleep(1.5)
    tune(cfg)
    trials = _study(cfg.out).trials
    assert [t.state for t in trials] == [STATES.COMPLETE, STATES.FAIL, STATES.COMPLETE]
    assert "retry_of" not in trials[2].user_attrs  # nothing to retry: no parameters drawn


def test_joining_a_study_with_another_space_is_refused(make_tune) -> None:
    tune(make_tune(max_trials=1))
    with pytest.raises(ConfigError, match="created with another space"):
        tune(make_tune(max_trials=2, space={"optimizer.lr": [0.01, 0.1]}))
    with pytest.raises(ConfigError, match="another objective"):
        tune(make_tune(max_trials=2, objective={"metric": "val.accuracy"}))


def test_warm_start_enqueues_the_best_parameters(make_tune, tmp_path: Path) -> None:
    first = tune(make_tune(max_trials=2, pruning={"enabled": False}))
    cfg = make_tune(max_trials=1, out=str(tmp_path / "second"), warm_start_from=str(first.out))
    tune(cfg)
    (t,) = _study(cfg.out).trials
    assert t.params == first.best.params
    assert t.user_attrs["warm_start_from"] == f"out#{first.best.number}"


def test_grid_strategy_covers_the_grid_once(make_tune) -> None:
    cfg = make_tune(
        strategy="grid",
        max_trials=10,
        space={"optimizer.lr": [0.01, 0.1], "batch_size": [4, 8]},
        pruning={"enabled": False},
    )
    tune(cfg)
    trials = _study(cfg.out).trials
    assert len(trials) == 4
    assert {(t.params["optimizer.lr"], t.params["batch_size"]) for t in trials} == {
        (0.01, 4), (0.01, 8), (0.1, 4), (0.1, 8),
    }  # fmt: skip


def test_hyperband_and_bayesian_strategies_run(make_tune, tmp_path: Path) -> None:
    for strategy in ("hyperband", "bayesian"):
        res = tune(make_tune(strategy=strategy, max_trials=2, out=str(tmp_path / strategy)))
        assert sum(res.counts.values()) == 2


# ------------------------------------------------------------------------- processes
def _write_cfg(path: Path, cfg) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
    return path


def _states(db: Path) -> list[tuple[str, bool]]:
    """(state, training started) per trial, straight from the SQLite file (cheap to poll)."""
    if not db.is_file():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute(
            "SELECT t.state, EXISTS(SELECT 1 FROM trial_user_attributes a "
            "WHERE a.trial_id = t.trial_id AND a.key = 'config') FROM trials t ORDER BY t.number"
        )
        return [(r[0], bool(r[1])) for r in rows]
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        con.close()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cvpipe.cli.main", "tune", *args]


@pytest.mark.slow
def test_parallel_workers_share_one_study(make_tune, tmp_path: Path) -> None:
    cfg = make_tune(max_trials=4, max_parallel=2, pruning={"enabled": False})
    result = tune(cfg)
    everything = _study(cfg.out).trials
    # a worker that asked for a trial while the other took the last slot skips it untrained
    skipped = [t for t in everything if "skipped" in t.user_attrs]
    assert all(t.state == STATES.FAIL and not t.user_attrs.get("config") for t in skipped)
    trials = [t for t in everything if t not in skipped]
    assert len(trials) == 4 and len({t.number for t in everything}) == len(everything)
    assert all(t.state == STATES.COMPLETE for t in trials), result.counts
    assert result.counts == {"COMPLETE": 4}
    pids = {t.user_attrs["pid"] for t in everything}
    # trials ran in the worker processes, at most max_parallel of them; on a loaded machine
    # one worker may finish every trial before the other has imported torch, so "both
    # contributed" is asserted by the PostgreSQL test's longer study instead
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert (tmp_path / "out" / "logs" / "worker_1.log").is_file()


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes(make_tune, tmp_path: Path) -> None:
    # trials long enough to be caught mid-run: the whole net trains on images
    cfg = make_tune(
        max_trials=3,
        pruning={"enabled": False},
        train=base_train(tmp_path, freeze="full", epochs=6),
        space={"optimizer.lr": {"type": "float", "low": 0.001, "high": 0.01}},
    )
    path = _write_cfg(tmp_path / "tune.yaml", cfg)
    env = {**os.environ, "CVPIPE_PROGRESS": "0"}
    db = tmp_path / "out" / "study.db"
    with open(tmp_path / "first.log", "wb") as log:
        proc = subprocess.Popen(_cli("--config", str(path)), env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 300
        try:
            while True:
                assert proc.poll() is None, (tmp_path / "first.log").read_text()
                assert time.monotonic() < deadline, "no trial completed in time"
                states = _states(db)
                if ("COMPLETE", True) in states and states[-1] == ("RUNNING", True):
                    break  # one trial done, the next one training
                time.sleep(0.25)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
    before = _study(tmp_path / "out").trials
    killed = before[-1].number
    assert before[-1].state == STATES.RUNNING  # left behind by the dead process
    done = {t.number: t.value for t in before if t.state == STATES.COMPLETE}

    rerun = subprocess.run(
        _cli("--config", str(path)), env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr
    after = _study(tmp_path / "out").trials
    numbers = [t.number for t in after]
    assert numbers == list(range(len(after)))  # continuous, no duplicates
    assert {t.number: t.value for t in after if t.number in done} == done  # kept as they were
    assert after[killed].state == STATES.FAIL and "error" not in after[killed].user_attrs
    retried = [t for t in after if t.user_attrs.get("retry_of") == killed]
    assert len(retried) == 1 and retried[0].params == after[killed].params
    assert sum(t.state == STATES.COMPLETE for t in after) == 3  # max_trials reached
    assert "interrupted" in rerun.stdout or "FAIL" in rerun.stdout
