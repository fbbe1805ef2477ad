"""Frozen-feature cache: same accuracy as the uncached path, reuse, atomic writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from tinydata import make_dataset  # noqa: E402

from cvpipe.config import load_config  # noqa: E402
from cvpipe.data.manifest import Dataset  # noqa: E402
from cvpipe.engine import features as F  # noqa: E402
from cvpipe.engine.config import TrainConfig  # noqa: E402
from cvpipe.engine.trainer import train  # noqa: E402
from cvpipe.models.classification import create_classifier  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = {
        "model": "base_cnn", "weights": "none", "input_size": 32, "epochs": 3, "batch_size": 8, "workers": 0,
        "freeze": "frozen", "feature_cache_dir": str(tmp_path / "features"), "optimizer": {"lr": 0.01},
    }  # fmt: skip
    return load_config(
        TrainConfig, values=base, overrides=[f"{k}={json.dumps(v)}" for k, v in kw.items()]
    )


def test_cached_matches_uncached_and_second_run_hits(tmp_path: Path, monkeypatch) -> None:
    ds = make_dataset(tmp_path / "ds", classes=3, per_class=10, splits={"train": 7, "val": 3})
    common = {"augment.hflip": False, "feature_cache_dtype": "float32"}
    plain = train(ds, tmp_path / "plain", cfg(tmp_path, feature_cache="off", **common))
    cached = train(ds, tmp_path / "cached", cfg(tmp_path, **common))
    assert plain.feature_cache is None and cached.feature_cache == "miss"
    for a, b in zip(plain.history, cached.history, strict=True):
        assert b["val.accuracy"] == pytest.approx(a["val.accuracy"], abs=0.1)
        assert b["val.loss"] == pytest.approx(a["val.loss"], abs=1e-3)
        assert b["train.loss"] == pytest.approx(a["train.loss"], abs=1e-3)
    assert cached.history[-1]["val.accuracy"] == 1.0  # separable colours: the head learns them

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone ran again although the cache holds these features")

    monkeypatch.setattr(F, "_compute", no_backbone)
    again = train(ds, tmp_path / "again", cfg(tmp_path, **common))
    assert again.feature_cache == "hit"
    assert (
        json.loads((tmp_path / "again" / "model_card.json").read_text())["extra"]["feature_cache"]
        == "hit"
    )
    assert [r["val.loss"] for r in again.history] == pytest.approx(
        [r["val.loss"] for r in cached.history], abs=1e-6
    )


def test_flip_variant_and_key(tmp_path: Path) -> None:
    ds = Dataset.load(make_dataset(tmp_path / "ds", classes=2, per_class=3))
    net = create_classifier("base_cnn", num_classes=2, input_size=32, freeze="frozen")
    req = F.FeatureRequest(
        variants=("base", "hflip"), dtype="float32", cache_dir=tmp_path / "fc", batch_size=4
    )
    fs = F.cached_features(net, ds, ds.records, req)
    assert fs.status == "miss" and fs.features.shape == (2, 6, 256) and fs.valid.all()
    x = net.preprocess.eval_transform()(Image.open(ds.image_path(ds.records[0])).convert("RGB"))
    with torch.no_grad():
        net.backbone.eval()
        want = net.backbone(torch.flip(x[None], dims=[3]))[0].numpy()
    np.testing.assert_allclose(fs.features[1, 0], want, rtol=1e-4, atol=1e-5)
    assert F.cached_features(net, ds, ds.records, req).status == "hit"
    # other records, other weights or other variants → another entry
    assert F.cached_features(net, ds, ds.records[:4], req).key != fs.key
    other = create_classifier("base_cnn", num_classes=2, input_size=32, freeze="frozen")
    assert F.state_digest(other.backbone) != F.state_digest(net.backbone)


def test_killed_feature_pass_leaves_no_cache(tmp_path: Path, monkeypatch) -> None:
    ds = Dataset.load(make_dataset(tmp_path / "ds", classes=2, per_class=4))
    net = create_classifier("base_cnn", num_classes=2, input_size=32, freeze="frozen")
    calls = {"n": 0}
    real_forward = net.backbone.forward

    def dying(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_forward(x)

    monkeypatch.setattr(net.backbone, "forward", dying)
    req = F.FeatureRequest(cache_dir=tmp_path / "fc", batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        F.cached_features(net, ds, ds.records, req)
    assert list((tmp_path / "fc").iterdir()) == []


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CVPIPE_HOME", str(tmp_path / "home"))
    assert F.default_cache_dir() == tmp_path / "home" / "features"
    assert F.default_cache_dir(tmp_path / "x") == tmp_path / "x"
