"""``--weights coco`` against torchvision's own architectures: a state dict built by
torchvision's builder for COCO's 91 classes (random values), served from 127.0.0.1 as the
published file, loads into the cvpipe detector for the dataset's classes with only the
class-dependent layers re-initialised, and training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.engine.tinydetect import CLASSES, make_detect_dataset
from tests.weightserver import WeightServer, publish
from torchvision.models import detection as tvd

from cvpipe.config import load_config
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.trainer import train
from cvpipe.errors import ConfigError, WeightsNotFoundError
from cvpipe.inference.loading import load_model
from cvpipe.models.coco_weights import start_from_coco
from cvpipe.models.detection import create_detector

SSD_CLS = [f"head.classification_head.module_list.{i}" for i in range(6)]
CLASS_LAYERS = {
    "ssdlite320_mobilenet_v3_large": [f"{m}.1" for m in SSD_CLS],
    "fasterrcnn_mobilenet_v3_large_fpn": [
        "roi_heads.box_predictor.cls_score",
        "roi_heads.box_predictor.bbox_pred",
    ],
    "ssd300_vgg16": SSD_CLS,
    "retinanet_resnet50_fpn": ["head.classification_head.cls_logits"],
    "fcos_resnet50_fpn": ["head.classification_head.cls_logits"],
    "fasterrcnn_resnet50_fpn": [
        "roi_heads.box_predictor.cls_score",
        "roi_heads.box_predictor.bbox_pred",
    ],
}
FAST = ("ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_fpn")
PARAMS = [pytest.param(a, marks=() if a in FAST else pytest.mark.slow) for a in CLASS_LAYERS]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CVPIPE_HOME", str(tmp_path / "cvpipe"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def _coco_state(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    net = getattr(tvd, arch)(weights=None, weights_backbone=None, num_classes=91)
    # torchvision's published COCO files hold FrozenBatchNorm2d: no num_batches_tracked
    return {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("arch", PARAMS)
def test_coco_start_keeps_all_but_the_class_layers_and_trains(
    arch: str, home: Path, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _coco_state(arch)
    publish(monkeypatch, weight_server, arch, state, tag="COCO_V1")
    det = create_detector(arch, num_classes=len(CLASSES))
    fresh = {k: v.clone() for k, v in det.model.state_dict().items()}
    report = start_from_coco(det, CLASSES)  # plane: new; car <- COCO 3
    assert report.class_modules == CLASS_LAYERS[arch]
    assert report.mapping == {"car": 3} and report.new_classes == ["plane"]
    after = det.model.state_dict()
    class_keys = {f"{m}.{p}" for m in CLASS_LAYERS[arch] for p in ("weight", "bias")}
    for key, value in after.items():
        if key in class_keys or key not in state:
            continue
        assert torch.equal(value, state[key]), key  # everything else is COCO's
    for key in sorted(k for k in class_keys if k.endswith("weight")):
        assert not torch.equal(after[key], fresh[key])  # background + car rows from COCO
    assert det.weights_info["source"] == "coco" and "kept" in det.weights_info["summary"]
    # one training step on the dataset's classes
    det.train()
    size = 300 if arch == "ssd300_vgg16" else 64
    images = [torch.rand(3, size, size) for _ in range(2)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    losses = det(images, targets)
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    grads = [p.grad for n, p in det.named_parameters() if "box_predictor" in n or "head" in n]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("arch", [*FAST, pytest.param("ssd300_vgg16", marks=pytest.mark.slow)])
def test_train_with_weights_coco_writes_a_run_that_rebuilds(
    arch: str, home: Path, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(monkeypatch, weight_server, arch, _coco_state(arch), tag="COCO_V1")
    ds = make_detect_dataset(home / "ds", splits={"train": 4, "val": 2})
    cfg = load_config(
        TrainConfig,
        overrides=[
            f"model={arch}", "weights=coco", "epochs=1", "batch_size=2",
            *([] if arch == "ssd300_vgg16" else ["input_size=64"]),  # SSD300: 300 px only
            "workers=0", "device=cpu", "health.enabled=false", "detector.precise_bn=0",
        ],
    )  # fmt: skip
    result = train(ds.root, home / "run", cfg)
    assert result.history and len(weight_server.requests) == 1  # downloaded once
    card = json.loads((home / "run" / "model_card.json").read_text())
    info = card["detector"]["backbone_weights"]  # Detector.weights_info
    assert info["source"] == "coco" and CLASS_LAYERS[arch][0].split(".")[0] in info["summary"]
    assert info["mapping"] == {"car": 3}
    model, _ = load_model(home / "run")  # the run rebuilds (normalisation included)
    assert model.card()["image_mean"] == card["detector"]["image_mean"]
    if arch == "ssd300_vgg16":  # torchvision's COCO SSD300 takes 0..255 inputs
        assert card["detector"]["image_std"] == pytest.approx([1 / 255] * 3)


def test_detectors_without_coco_weights_say_which_have_them(home: Path) -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=1)
    with pytest.raises(WeightsNotFoundError, match="no published COCO weights.*ssd300_vgg16"):
        start_from_coco(det, ["a"])


def test_coco_offline_is_one_clear_line(home: Path) -> None:
    det = create_detector("ssdlite320_mobilenet_v3_large", num_classes=1)
    with pytest.raises(WeightsNotFoundError) as exc:
        start_from_coco(det, ["a"])
    msg = str(exc.value)
    assert (
        "downloads are off (CVPIPE_OFFLINE=1)" in msg
        and "ssdlite320_mobilenet_v3_large_coco" in msg
    )
    assert str(home / "torch") in msg and "\n" not in msg


def test_class_map_starts_a_renamed_class_from_its_coco_rows(
    home: Path, weight_server: WeightServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    arch = "ssdlite320_mobilenet_v3_large"
    publish(monkeypatch, weight_server, arch, _coco_state(arch), tag="COCO_V1")
    ds = make_detect_dataset(home / "ds", splits={"train": 4, "val": 2})
    overrides = [
        f"model={arch}", "weights=coco", "epochs=1", "batch_size=2", "input_size=64",
        "workers=0", "device=cpu", "health.enabled=false", "detector.precise_bn=0",
    ]  # fmt: skip
    cfg = load_config(TrainConfig, overrides=[*overrides, "detector.class_map.plane=airplane"])
    train(ds.root, home / "run", cfg)
    card = json.loads((home / "run" / "model_card.json").read_text())
    assert card["detector"]["backbone_weights"]["mapping"] == {"plane": 5, "car": 3}
    bad = load_config(TrainConfig, overrides=[*overrides, "detector.class_map.plane=spaceship"])
    with pytest.raises(ConfigError, match="'spaceship' is not a COCO class"):
        train(ds.root, home / "run2", bad)
