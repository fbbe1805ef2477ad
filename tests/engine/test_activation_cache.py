"""last-n fine-tuning from cached stem activations: same losses, reuse, flips, budget."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tinydata import make_dataset  # noqa: E402

from cvpipe.config import load_config  # noqa: E402
from cvpipe.data.datasets import ImageDataset  # noqa: E402
from cvpipe.data.manifest import Dataset  # noqa: E402
from cvpipe.engine import features as F  # noqa: E402
from cvpipe.engine.config import TrainConfig  # noqa: E402
from cvpipe.engine.trainer import train  # noqa: E402
from cvpipe.models.classification import create_classifier  # noqa: E402
from cvpipe.models.cut import cut_backbone  # noqa: E402

MODEL = "tf_efficientnet_lite0"


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = {
        "model": MODEL, "weights": "none", "input_size": 32, "epochs": 2, "batch_size": 8,
        "workers": 0, "freeze": "last-n", "last_n": 2, "feature_cache": "on",
        "feature_cache_dir": str(tmp_path / "features"), "optimizer": {"lr": 0.01},
        "health": {"enabled": False},
    }  # fmt: skip
    return load_config(
        TrainConfig, values=base, overrides=[f"{k}={json.dumps(v)}" for k, v in kw.items()]
    )


def steps(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("kind") == "step"]


def test_cached_last_n_matches_images_and_second_run_hits(tmp_path: Path, monkeypatch) -> None:
    ds = make_dataset(tmp_path / "ds", classes=3, per_class=8, splits={"train": 6, "val": 2})
    # SGD and full batches: Adam's sign-like first steps and BatchNorm over 2 images
    # would amplify float32 noise (stem folded vs not) into visible loss differences
    common = {
        "augment.hflip": False, "feature_cache_dtype": "float32", "batch_size": 6,
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.0},
    }  # fmt: skip
    plain = train(ds, tmp_path / "plain", cfg(tmp_path, **{**common, "feature_cache": "off"}))
    cached = train(ds, tmp_path / "cached", cfg(tmp_path, **common))
    assert plain.feature_cache is None and cached.feature_cache == "miss"
    # the same batches through the same tail: the same loss at every step (float32 cache)
    a, b = steps(tmp_path / "plain"), steps(tmp_path / "cached")
    assert len(a) == len(b) == 6
    assert b[0] == pytest.approx(a[0], abs=1e-5)  # the same first batch, the same weights
    assert b == pytest.approx(a, abs=1e-4)
    for x, y in zip(plain.history, cached.history, strict=True):
        assert y["val.loss"] == pytest.approx(x["val.loss"], abs=2e-4)
    # last.pt holds the tail trained from the cache: on images it gives the run's val loss
    ckpt = torch.load(tmp_path / "cached" / "checkpoints" / "last.pt", weights_only=True)
    net = create_classifier(MODEL, num_classes=3, input_size=32)
    net.load_state_dict(ckpt["model"])
    data = Dataset.load(ds)
    val = ImageDataset(data, data.split_records("val"), net.preprocess.eval_transform())
    x = torch.stack([v[0] for v in val])
    y = torch.tensor([data.class_index(r) for r in data.split_records("val")])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(net.eval()(x), y).item()
    assert loss == pytest.approx(cached.history[-1]["val.loss"], abs=1e-4)

    def no_stem(*args, **kwargs):
        raise AssertionError("the stem ran again although the cache holds its activations")

    monkeypatch.setattr(F, "_compute", no_stem)
    again = train(ds, tmp_path / "again", cfg(tmp_path, **common))
    assert again.feature_cache == "hit"
    assert steps(tmp_path / "again") == pytest.approx(b, abs=1e-6)


def test_flip_variant_is_the_stem_of_the_mirrored_image(tmp_path: Path) -> None:
    ds = Dataset.load(make_dataset(tmp_path / "ds", classes=2, per_class=3, size=48))
    torch.manual_seed(0)
    net = create_classifier(MODEL, num_classes=2, input_size=48, freeze="last-n", last_n=3)
    cut = cut_backbone(net, 3)
    source = F.FeatureSource(
        cut.name,
        cut.stem,
        net.preprocess.eval_transform(),
        net.preprocess.to_json(),
        (tuple(cut.shape),),
    )
    req = F.FeatureRequest(
        variants=("base", "hflip"), dtype="float16", cache_dir=tmp_path / "fc", backend="torch"
    )
    fs = F.cached_features(source, ds, ds.records, req)
    assert fs.features.shape == (2, len(ds.records), *cut.shape)
    images = torch.stack(
        [x for x, _ in ImageDataset(ds, ds.records, net.preprocess.eval_transform())]
    )
    net.eval()
    with torch.no_grad():
        base, flipped = cut.stem(images), cut.stem(torch.flip(images, dims=[3]))
    got = torch.from_numpy(np.asarray(fs.features, dtype=np.float32))
    scale = float(flipped.abs().max())
    torch.testing.assert_close(got[0].reshape(base.shape), base, atol=2e-3 * scale, rtol=2e-3)
    torch.testing.assert_close(got[1].reshape(base.shape), flipped, atol=2e-3 * scale, rtol=2e-3)
    # the stem of a mirrored image is not the mirrored activation (padding is one-sided)
    assert not torch.allclose(flipped, torch.flip(base, dims=[3]), atol=2e-3 * scale)
    meta = json.loads((fs.path / "meta.json").read_text())
    assert meta["shapes"] == [list(cut.shape)] and meta["model"] == cut.name


def test_over_budget_or_uncuttable_trains_from_images(tmp_path: Path, caplog) -> None:
    ds = make_dataset(tmp_path / "ds", classes=2, per_class=4, splits={"train": 3, "val": 1})
    caplog.set_level(logging.WARNING, logger="cvpipe")
    res = train(ds, tmp_path / "big", cfg(tmp_path, epochs=1, feature_cache_max_mb=0.001))
    assert res.feature_cache is None
    assert "over feature_cache_max_mb=0" in caplog.text
    caplog.clear()
    res = train(ds, tmp_path / "cnn", cfg(tmp_path, epochs=1, model="base_cnn", last_n=1))
    assert res.feature_cache is None
    assert "no stem/tail cut known" in caplog.text


def test_auto_caches_last_n_only_when_the_augmentation_is_cacheable(tmp_path: Path, caplog) -> None:
    assert cfg(tmp_path, feature_cache="auto").use_activation_cache  # centre crop + flip
    assert not cfg(
        tmp_path, feature_cache="auto", **{"augment.crop": "random"}
    ).use_activation_cache
    assert not cfg(tmp_path, feature_cache="off").use_activation_cache
    assert not cfg(tmp_path, feature_cache="auto", freeze="full").use_activation_cache
    ds = make_dataset(tmp_path / "ds", classes=2, per_class=4, splits={"train": 3, "val": 1})
    caplog.set_level(logging.INFO, logger="cvpipe")
    res = train(ds, tmp_path / "auto", cfg(tmp_path, epochs=1, feature_cache="auto"))
    assert (
        res.feature_cache == "miss" and "activation cache: tf_efficientnet_lite0[:7]" in caplog.text
    )
    # asked for explicitly, random crops are dropped with a warning (as with frozen), and
    # the entries of the centre-crop run serve it
    caplog.clear()
    res = train(ds, tmp_path / "on", cfg(tmp_path, epochs=1, **{"augment.crop": "random"}))
    assert res.feature_cache == "hit"
    assert "activation cache: random crops" in caplog.text


def test_feature_cache_on_still_refuses_full_fine_tuning(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="needs freeze: frozen or last-n"):
        cfg(tmp_path, freeze="full")
