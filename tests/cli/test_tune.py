"""``cvpipe tune`` (run, status, results) and ``cvpipe train --from-trial``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from tinydata import make_dataset  # noqa: E402

from cvpipe.cli.main import main  # noqa: E402
from cvpipe.config import load_config  # noqa: E402
from cvpipe.engine.config import TrainConfig  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-trial study (tiny head-only trials), run once through the CLI."""
    root = tmp_path_factory.mktemp("cli-tune")
    ds = make_dataset(root / "ds", classes=3, per_class=8)
    train = {
        "model": "base_cnn", "weights": "none", "freeze": "frozen", "input_size": 32, "epochs": 2,
        "batch_size": 8, "workers": 0, "feature_cache_dir": str(root / "features"),
    }  # fmt: skip
    if "health" in TrainConfig.model_fields:
        train["health"] = {"enabled": False}
    cfg = {
        "dataset": str(ds),
        "train": train,
        "space": {
            "optimizer.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
            "batch_size": [4, 8],
        },
        "objective": {"metric": "val.loss", "direction": "minimize"},
        "max_trials": 2,
        "strategy": "random",
        "out": str(root / "study"),
        "report": False,
    }
    (root / "tune.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert (
        main(
            [
                "tune",
                "--config",
                str(root / "tune.yaml"),
                "--set",
                "pruning.enabled=false",
                "--no-progress",
            ]
        )
        == 0
    )
    return root / "study"


def test_run_prints_trials_table_and_best(study_dir: Path, capsys) -> None:
    # the same command again: the study is complete, nothing runs, the table is shown
    config = study_dir.parent / "tune.yaml"
    assert (
        main(["tune", "--config", str(config), "--set", "pruning.enabled=false", "--no-progress"])
        == 0
    )
    out = capsys.readouterr().out
    assert "trials of study sorted by val.loss (minimize)" in out
    assert "optimizer.lr" in out and "batch_size" in out and "COMPLETE" in out
    assert "best trial" in out and f"cvpipe train --from-trial {study_dir}:best" in out
    assert (study_dir / "results.csv").is_file() and (study_dir / "tune.yaml").is_file()


def test_status_and_results(study_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["tune", "status", str(study_dir)]) == 0
    out = capsys.readouterr().out
    assert "study study: minimize val.loss" in out
    assert "trials: 2 finished of 2; 2 complete" in out
    assert "best: trial" in out
    assert main(["tune", "results", str(study_dir), "--csv", str(tmp_path / "t.csv"), "--top", "1",
                 "--html", str(tmp_path / "r.html")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "best 1 of 2" in out
    with open(tmp_path / "t.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and float(rows[0]["objective"]) <= float(rows[1]["objective"])
    assert (tmp_path / "r.html").read_text().count("data:image/png;base64,") >= 2
    # by study name with an explicit storage URL
    url = f"sqlite:///{study_dir / 'study.db'}"
    assert main(["tune", "results", "study", "--storage", url]) == 0
    assert "COMPLETE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["tune", "status", "nowhere"], "pass --storage URL"),
        (["tune", "status"], "give the STUDY"),
        (["tune", "results", "other", "--storage", "STUDY_DB"], "studies there: study"),
        (["tune", "results", "x", "--storage", "redis://h/0"], "unsupported URL scheme 'redis'"),
    ],
)
def test_bad_study_references(study_dir: Path, capsys, argv: list[str], needle: str) -> None:
    argv = [a.replace("STUDY_DB", f"sqlite:///{study_dir / 'study.db'}") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cvpipe tune: error:") and needle in err and "\n" not in err


def test_bad_config_is_one_line_before_any_trial(study_dir: Path, tmp_path: Path, capsys) -> None:
    cfg = yaml.safe_load((study_dir.parent / "tune.yaml").read_text())
    cfg["space"] = {"optimizer.lrr": {"type": "float", "low": 0.001, "high": 0.1}}
    cfg["out"] = str(tmp_path / "bad")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["tune", "--config", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "cvpipe tune: error: space.optimizer.lrr: unknown key 'lrr' in section 'optimizer'; "
        "did you mean 'lr'? valid keys: betas, lr, momentum, name, nesterov, weight_decay"
    )
    assert not (tmp_path / "bad").exists()
    assert main(["tune", "--config", str(tmp_path / "bad.yaml"), "--max-trials", "0"]) == 2
    assert "max_trials" in capsys.readouterr().err


def test_train_from_trial_retrains_the_best_longer(study_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "best"
    assert (
        main(
            [
                "train",
                "--from-trial",
                f"{study_dir}:best",
                "--set",
                "epochs=3",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "from trial" in capsys.readouterr().out
    import optuna

    best = optuna.load_study(
        study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}"
    ).best_trial
    cfg = load_config(TrainConfig, out / "config.yaml")
    assert cfg.epochs == 3
    assert cfg.optimizer.lr == pytest.approx(best.params["optimizer.lr"])
    assert cfg.batch_size == best.params["batch_size"]
    assert (out / "checkpoints" / "best.pt").is_file()
    assert main(["train", "--from-trial", f"{study_dir}:7", "--out", str(tmp_path / "x")]) == 2
    assert "has no trial 7 (trials 0..1)" in capsys.readouterr().err
