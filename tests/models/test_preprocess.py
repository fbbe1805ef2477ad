from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cvpipe.errors import ConfigError
from cvpipe.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess


def test_defaults_are_imagenet_224():
    p = Preprocess()
    assert (p.input_size, p.resize_size, p.mean, p.std) == (224, 256, IMAGENET_MEAN, IMAGENET_STD)


def test_json_round_trip_gives_equal_instance():
    p = Preprocess(
        input_size=260,
        resize_size=292,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bicubic",
    )
    d = p.to_json()
    assert d["mean"] == [0.5, 0.5, 0.5]
    assert Preprocess.from_json(d) == p


def test_from_json_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown keys.*'size'"):
        Preprocess.from_json({"size": 3})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"interpolation": "lanczos"}, "interpolation"),
        ({"input_size": 0}, "positive"),
        ({"std": (1.0, 0.0, 1.0)}, "std"),
    ],
)
def test_invalid_values_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Preprocess(**kwargs)


def test_eval_transform_resizes_crops_and_normalises():
    p = Preprocess(input_size=32, resize_size=40, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    im = Image.fromarray(np.full((50, 80, 3), 153, np.uint8), "RGB")  # 153/255 = 0.6
    x = p.eval_transform()(im)
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
    expected = torch.tensor([(0.6 - 0.5) / 0.25, (0.6 - 0.5) / 0.5, (0.6 - 0.5) / 1.0])
    assert torch.allclose(x.mean(dim=(1, 2)), expected, atol=1e-4)


def test_eval_transform_centre_crops_after_resizing_the_short_side():
    arr = np.zeros((40, 120, 3), np.uint8)
    arr[:, 40:80] = 255  # white centre third
    x = Preprocess(input_size=20, resize_size=20, mean=(0, 0, 0), std=(1, 1, 1)).eval_transform()(
        Image.fromarray(arr)
    )
    assert x.shape == (3, 20, 20)
    assert x[:, :, 3:17].min() > 0.9  # the crop is taken from the white centre


def test_with_input_size_keeps_ratio():
    assert Preprocess().with_input_size(64) == Preprocess(input_size=64, resize_size=73)
