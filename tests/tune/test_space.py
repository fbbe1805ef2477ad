"""Search spaces: parsing, validation against TrainConfig before any trial, suggestion, grid."""

from __future__ import annotations

import optuna
import pytest

from cvpipe.engine.config import TrainConfig
from cvpipe.errors import ConfigError
from cvpipe.tune.space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    apply_params,
    check_key,
    parse_param,
)

BASE = {"model": "base_cnn", "weights": "none", "epochs": 3}


def test_parse_each_type_and_list_shorthand() -> None:
    space = SearchSpace.from_mapping(
        {
            "optimizer.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
            "epochs": {"type": "int", "low": 5, "high": 20, "step": 5},
            "batch_size": [16, 32, 64],
            "optimizer.name": {"type": "categorical", "choices": ["sgd", "adam"]},
        }
    )
    lr, ep, bs, opt = space.params.values()
    assert isinstance(lr, FloatParam) and lr.log and (lr.low, lr.high) == (0.001, 0.1)
    assert isinstance(ep, IntParam) and ep.values() == [5, 10, 15, 20]
    assert isinstance(bs, CategoricalParam) and bs.choices == [16, 32, 64]
    assert isinstance(opt, CategoricalParam) and opt.values() == ["sgd", "adam"]
    assert list(space.to_json()) == ["optimizer.lr", "epochs", "batch_size", "optimizer.name"]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"type": "floot", "low": 0, "high": 1}, "did you mean 'float'"),
        ({"low": 0, "high": 1}, "type None is not a parameter type"),
        ({"type": "float", "low": 0.1, "high": 0.01}, "low (0.1) must be below high (0.01)"),
        ({"type": "float", "low": 0.1, "high": 0.1}, "must be below high"),
        ({"type": "float", "low": 0.0, "high": 0.1, "log": True}, "log: true needs low > 0"),
        ({"type": "int", "low": 0, "high": 8, "log": True}, "log: true needs low >= 1"),
        ({"type": "float", "high": 0.1}, "low: Field required"),
        ({"type": "categorical", "choices": []}, "choices"),
        ({"type": "categorical", "choices": [8, 8]}, "choices must be distinct"),
        ({"type": "float", "low": 0, "high": 1, "bogus": 1}, "bogus"),
        ("0.1", "expected a mapping"),
    ],
)
def test_bad_parameters_are_clear_errors(spec: object, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_param("optimizer.lr", spec)
    assert "space.optimizer.lr" in str(exc.value)
    assert needle in str(exc.value)


def test_empty_space_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no parameters to tune"):
        SearchSpace.from_mapping({})


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("optimizer.lrr", "did you mean 'lr'"),
        ("optimiser.lr", "did you mean 'optimizer'"),
        ("learning_rate", "valid keys:"),
        ("epochs.max", "'epochs' is a plain value"),
        ("scheduler.gama", "did you mean 'gamma'"),
    ],
)
def test_unknown_keys_suggest_close_ones(key: str, needle: str) -> None:
    space = SearchSpace.from_mapping({key: [1, 2]})
    with pytest.raises(ConfigError) as exc:
        space.validate(BASE)
    assert f"space.{key}" in str(exc.value) and needle in str(exc.value)


def test_nested_optional_sections_are_reachable() -> None:
    # head is `HeadSpec | None`; augment and early_stopping are sections
    for key in ("head.hidden", "head.dropout", "augment.hflip", "early_stopping.patience"):
        check_key(key, TrainConfig)


@pytest.mark.parametrize(
    ("key", "spec", "needle"),
    [
        ("optimizer.lr", {"type": "float", "low": 0.0, "high": 0.1}, "lower bound"),
        ("batch_size", [0, 8], "choice"),
        ("optimizer.name", ["sgd", "rmsprop"], "'rmsprop'"),
        ("optimizer.momentum", {"type": "float", "low": 0.5, "high": 1.5}, "upper bound"),
        ("head.dropout", {"type": "float", "low": 0.0, "high": 1.0}, "head.dropout"),
        ("freeze", ["frozen", "partial"], "'partial'"),
    ],
)
def test_values_the_config_rejects_are_errors_before_any_trial(
    key: str, spec: object, needle: str
) -> None:
    space = SearchSpace.from_mapping({key: spec})
    with pytest.raises(ConfigError) as exc:
        space.validate(BASE)
    msg = str(exc.value)
    assert msg.startswith(f"space.{key}:") and needle in msg and "narrow the range" in msg


def test_valid_space_passes_and_base_is_not_mutated() -> None:
    base = {"optimizer": {"name": "sgd"}, **BASE}
    space = SearchSpace.from_mapping(
        {
            "optimizer.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "optimizer.weight_decay": {"type": "float", "low": 0.0, "high": 1e-3},
            "head.hidden": [[128], [256, 64]],
            "epochs": {"type": "int", "low": 1, "high": 4},
        }
    )
    space.validate(base)
    data = apply_params(base, {"optimizer.lr": 0.01, "head.hidden": [128]})
    assert data["optimizer"] == {"name": "sgd", "lr": 0.01} and data["head"] == {"hidden": [128]}
    assert base == {"optimizer": {"name": "sgd"}, **BASE}


def test_suggest_decodes_list_choices() -> None:
    space = SearchSpace.from_mapping(
        {
            "head.hidden": [[128], [256, 64]],
            "optimizer.lr": {"type": "float", "low": 0.001, "high": 0.1},
        }
    )
    trial = optuna.trial.FixedTrial({"head.hidden": "[256, 64]", "optimizer.lr": 0.02})
    params = space.suggest(trial)
    assert params == {"head.hidden": [256, 64], "optimizer.lr": 0.02}
    assert space.decode({"head.hidden": "[128]"}) == {"head.hidden": [128]}
    TrainConfig.model_validate(apply_params(BASE, params))


def test_grid_values_and_missing_step() -> None:
    space = SearchSpace.from_mapping(
        {
            "optimizer.lr": {"type": "float", "low": 0.01, "high": 0.03, "step": 0.01},
            "batch_size": [8, 16],
            "epochs": {"type": "int", "low": 1, "high": 5, "step": 2},
        }
    )
    assert space.grid() == {
        "optimizer.lr": [0.01, 0.02, 0.03],
        "batch_size": [8, 16],
        "epochs": [1, 3, 5],
    }
    assert space.grid_size() == 18
    bad = SearchSpace.from_mapping({"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.1}})
    with pytest.raises(ConfigError, match="space.optimizer.lr: .*step"):
        bad.grid()


@pytest.mark.parametrize("recipe", ["seed001_tune.yaml", "seed000_tune.yaml"])
def test_seed_recipes_validate(recipe: str) -> None:
    from pathlib import Path

    from cvpipe.config import load_config
    from cvpipe.tune.config import TuneConfig

    path = Path(__file__).resolve().parents[2] / "recipes" / recipe
    cfg = load_config(TuneConfig, path)
    base = cfg.base_train()
    TrainConfig.model_validate(base)
    cfg.search_space.validate(base)
    if recipe.startswith("seed001"):
        assert (cfg.max_trials, cfg.max_parallel, cfg.objective.resolved_direction) == (
            4,
            2,
            "minimize",
        )
        assert cfg.search_space.params["batch_size"].choices == [16, 32, 64, 128, 256]
    else:
        assert (cfg.max_trials, cfg.max_parallel, cfg.objective.resolved_direction) == (
            6,
            1,
            "maximize",
        )
        assert cfg.objective.metric == "val.mAP" and cfg.pruning.enabled
