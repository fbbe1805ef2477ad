from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from cvpipe.config import load_config
from cvpipe.errors import ConfigError
from cvpipe.models.heads import HeadSpec, build_head


def test_default_is_one_linear_layer():
    head = build_head(16, 3, HeadSpec())
    assert [type(m) for m in head] == [nn.Linear]
    assert head(torch.zeros(2, 16)).shape == (2, 3)


def test_seed001_head_2048_128_relu_5_has_seed_keys():
    head = build_head(2048, 5, HeadSpec(hidden=[128]))
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear]
    # same keys as seed 001's nn.Sequential(Linear(2048,128), ReLU(), Linear(128,5))
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == {
        "0.weight": (128, 2048), "0.bias": (128,), "2.weight": (5, 128), "2.bias": (5,),
    }  # fmt: skip


def test_dropout_follows_each_hidden_activation():
    head = build_head(8, 2, HeadSpec(hidden=[6, 4], dropout=0.3, activation="gelu"))
    assert [type(m) for m in head] == [
        nn.Linear,
        nn.GELU,
        nn.Dropout,
        nn.Linear,
        nn.GELU,
        nn.Dropout,
        nn.Linear,
    ]
    assert head[2].p == pytest.approx(0.3)


def test_dropout_without_hidden_precedes_the_linear_layer():
    head = build_head(8, 2, HeadSpec(dropout=0.5))
    assert [type(m) for m in head] == [nn.Dropout, nn.Linear]


@pytest.mark.parametrize("kwargs", [{"activation": "swish2"}, {"dropout": 1.0}, {"hidden": [0]}])
def test_invalid_specs_are_rejected(kwargs):
    with pytest.raises(ValidationError):
        HeadSpec(**kwargs)


def test_through_load_config_errors_are_config_errors_with_suggestions():
    with pytest.raises(ConfigError, match="activation"):
        load_config(HeadSpec, overrides=["activation=rleu"])
    with pytest.raises(ConfigError, match="did you mean 'hidden'"):
        load_config(HeadSpec, overrides=["hiden=[128]"])
    assert load_config(HeadSpec, overrides=["hidden=[128]", "dropout=0.2"]).hidden == [128]


def test_bad_dimensions():
    with pytest.raises(ValueError, match="num_classes"):
        build_head(8, 0, HeadSpec())
