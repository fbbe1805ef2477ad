"""Every classification training recipe in recipes/ resolves to a valid TrainConfig."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cvpipe.config import load_config
from cvpipe.engine.config import TrainConfig
from cvpipe.models.classification import MODELS

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
CLASSIFIER_RECIPES = [
    p for p in RECIPES if (yaml.safe_load(p.read_text()) or {}).get("model") in MODELS
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


@pytest.mark.parametrize("path", CLASSIFIER_RECIPES, ids=lambda p: p.stem)
def test_classifier_recipe_is_valid(path: Path) -> None:
    cfg = load_config(TrainConfig, path)
    assert cfg.model in MODELS
