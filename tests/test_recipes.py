"""Every training recipe in recipes/ resolves to a valid TrainConfig for its task."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cvpipe.config import load_config
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.detection_run import detection_config
from cvpipe.models.classification import MODELS
from cvpipe.models.detection import DETECTORS

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
CLASSIFIER_RECIPES = [
    p for p in RECIPES if (yaml.safe_load(p.read_text()) or {}).get("model") in MODELS
]
DETECTOR_RECIPES = [
    p for p in RECIPES if (yaml.safe_load(p.read_text()) or {}).get("model") in DETECTORS
]


def test_reference_projects_have_recipes() -> None:
    names = {p.stem for p in CLASSIFIER_RECIPES}
    assert {
        "seed001_custom_cnn",
        "seed001_resnet50",
        "seed002_resnext101",
        "seed003_vgg16",
        "demo_counter",
    } <= names
    detectors = {p.stem for p in DETECTOR_RECIPES}
    assert {
        "seed000_ssd512_resnet50",
        "seed004_ssdlite_mnv2",
        "seed004_ssdlite_mnv2_fpnlite",
        "demo_detector",
        "detect_coco_ssd_mnv2",
    } <= detectors


@pytest.mark.parametrize("path", CLASSIFIER_RECIPES, ids=lambda p: p.stem)
def test_classifier_recipe_is_valid(path: Path) -> None:
    cfg = load_config(TrainConfig, path)
    assert cfg.model in MODELS


@pytest.mark.parametrize("path", DETECTOR_RECIPES, ids=lambda p: p.stem)
def test_detector_recipe_is_valid(path: Path) -> None:
    cfg = detection_config(load_config(TrainConfig, path))  # raises on classifier-only settings
    assert cfg.model in DETECTORS
    assert (
        cfg.early_stopping.metric.startswith("val.mAP")
        and cfg.early_stopping.resolved_mode == "max"
    )


def test_seed_recipes_carry_the_reference_hyperparameters() -> None:
    s000 = load_config(TrainConfig, RECIPES[0].parent / "seed000_ssd512_resnet50.yaml")
    assert (s000.input_size, s000.batch_size, s000.optimizer.name, s000.optimizer.lr) == (
        512,
        16,
        "sgd",
        0.0156,
    )
    assert (s000.optimizer.momentum, s000.optimizer.weight_decay, s000.detector.nms_iou) == (
        0.9,
        5e-4,
        0.45,
    )
    assert (s000.scheduler.name, s000.scheduler.milestones, s000.scheduler.gamma) == (
        "step",
        [50, 70, 80, 90, 95],
        0.1,
    )
    for name in ("seed004_ssdlite_mnv2", "seed004_ssdlite_mnv2_fpnlite"):
        s004 = load_config(TrainConfig, RECIPES[0].parent / f"{name}.yaml")
        assert (s004.input_size, s004.batch_size, s004.optimizer.lr) == (320, 10, 0.04)
        assert (s004.detector.classification_weight, s004.detector.localization_weight) == (
            0.5,
            1.0,
        )


def test_detect_default_is_the_measured_recipe() -> None:
    """`cvpipe train` on a detect dataset without --model trains
    recipes/detect_coco_ssd_mnv2.yaml (benchmarks/detect_quality.py measures that file)."""
    from cvpipe.engine.defaults import TASK_DEFAULTS, _unset_settings

    recipe = load_config(TrainConfig, RECIPES[0].parent / "detect_coco_ssd_mnv2.yaml")
    first = TASK_DEFAULTS["detect"][0]
    assert first.model == recipe.model == "ssd300_mobilenet_v2"
    default = TrainConfig().model_copy(
        update={"model": first.model, **_unset_settings(TrainConfig(), first.settings)}
    )
    assert default.model_dump() == recipe.model_dump()
