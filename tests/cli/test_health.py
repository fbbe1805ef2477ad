"""cvpipe health: re-analysis of a recorded run; cvpipe train prints the health summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "engine"))
from tinydata import make_dataset  # noqa: E402

from cvpipe.cli.main import main  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("health_cli")
    ds = make_dataset(tmp / "ds", classes=3, per_class=6)
    out = tmp / "run"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = ["train", str(ds), "--out", str(out), "--model", "base_cnn", "--weights", "none", "--epochs", "2",
                "--batch-size", "4", "--workers", "0", "--no-progress", "--set", "input_size=32",
                "--set", f"feature_cache_dir={tmp / 'features'}"]  # fmt: skip
        assert main(args) == 0
    finally:
        torch.set_num_threads(old)
    return out


def test_train_prints_health_summary(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the module fixture trained with the CLI; its output is gone, so re-run the summary path
    from cvpipe.cli.train import _health_summary

    _health_summary(run)
    out = capsys.readouterr().out
    assert "health:" in out and "findings.json" in out


def test_health_reanalyses_with_overrides(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["health", str(run), "--set", "rules.StepOutlier.n_outliers=0", "--set", "rules.StepOutlier.stddev=0",
            "--set", "rules.StepOutlier.min_ratio=0.0", "--set", "rules.StepOutlier.min_excess_s=0",
            "--set", "rules.StepOutlier.skip_steps=0"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "StepOutlier" in out and "stddev:0" in out and "report:" in out
    data = json.loads((run / "health" / "findings.json").read_text())
    assert "StepOutlier" in data["fired"]
    assert (run / "health" / "report.html").is_file()
    assert main(["health", str(run), "--no-report", "--all"]) == 0
    out = capsys.readouterr().out
    assert "LossNotDecreasing" in out and "WeightUpdateRatio" in out  # --all: every rule
    assert json.loads((run / "health" / "findings.json").read_text())["fired"] == []


def test_health_config_file_and_run_settings(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "h.yaml"
    cfg.write_text("health:\n  rules:\n    InitialLoss: {tolerance: 0.0}\n")
    assert main(["health", str(run), "--config", str(cfg), "--no-report"]) == 0
    assert "InitialLoss" in capsys.readouterr().out


def test_health_errors_are_one_line(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", str(run), "--set", "rules.StepOutlyer.stddev=4"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'StepOutlier'" in err and "Traceback" not in err
    assert main(["health", str(tmp_path)]) == 2
    assert "no health trace" in capsys.readouterr().err
    assert main(["health", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_health_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["health", "--list"]) == 0
    out = capsys.readouterr().out
    assert "StepOutlier" in out and "stddev:3.0" in out and "LowGPUUtilization" in out
