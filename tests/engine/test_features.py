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
from cvpipe.engine import feature_backends as FB  # noqa: E402
from cvpipe.engine import features as F  # noqa: E402
from cvpipe.engine.config import TrainConfig  # noqa: E402
from cvpipe.engine.trainer import train  # noqa: E402
from cvpipe.errors import ConfigError  # noqa: E402
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


def _net_and_data(tmp_path: Path, per_class: int = 3):
    ds = Dataset.load(make_dataset(tmp_path / "ds", classes=2, per_class=per_class))
    net = create_classifier("base_cnn", num_classes=2, input_size=32, freeze="frozen")
    return net, ds


def _req(tmp_path: Path, name: str, **kw) -> F.FeatureRequest:
    return F.FeatureRequest(
        variants=("base", "hflip"), dtype="float32", cache_dir=tmp_path / name, batch_size=4, **kw
    )


def test_onnxruntime_features_match_torch_and_share_the_key(tmp_path: Path) -> None:
    net, ds = _net_and_data(tmp_path)
    training = net.backbone.training
    t = F.cached_features(net, ds, ds.records, _req(tmp_path, "t", backend="torch"))
    o = F.cached_features(net, ds, ds.records, _req(tmp_path, "o", backend="onnxruntime"))
    assert o.key == t.key  # interchangeable features: the backend is not part of the key
    np.testing.assert_allclose(o.features, t.features, rtol=1e-4, atol=1e-4)
    assert json.loads((o.path / "meta.json").read_text())["backend"] == "onnxruntime"
    assert json.loads((t.path / "meta.json").read_text())["backend"] == "torch"
    assert len(list((tmp_path / "o" / "onnx").glob("*.onnx"))) == 1
    assert not (tmp_path / "t" / "onnx").exists()
    # the backbone is left as it was found: default layout, train flag restored
    assert not F._is_channels_last(net.backbone) and net.backbone.training == training


def test_exported_graph_is_reused_by_other_records(tmp_path: Path, monkeypatch) -> None:
    net, ds = _net_and_data(tmp_path)
    F.cached_features(net, ds, ds.records, _req(tmp_path, "c", backend="onnxruntime"))

    def no_export(*args, **kwargs):
        raise AssertionError("the backbone was exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    # auto: a tiny pass alone would not pay for an export, but the cached graph is free
    fs = F.cached_features(net, ds, ds.records[:4], _req(tmp_path, "c", backend="auto"))
    assert json.loads((fs.path / "meta.json").read_text())["backend"] == "onnxruntime"


def test_auto_uses_torch_for_small_passes_and_onnx_for_large(tmp_path: Path, monkeypatch) -> None:
    net, ds = _net_and_data(tmp_path)
    small = F.cached_features(net, ds, ds.records, _req(tmp_path, "s"))
    assert json.loads((small.path / "meta.json").read_text())["backend"] == "torch"
    monkeypatch.setattr(FB, "ORT_PAYBACK_S", 0.0)
    large = F.cached_features(net, ds, ds.records, _req(tmp_path, "l"))
    assert json.loads((large.path / "meta.json").read_text())["backend"] == "onnxruntime"
    np.testing.assert_allclose(large.features, small.features, rtol=1e-4, atol=1e-4)


def test_auto_falls_back_to_torch_with_a_reason(tmp_path: Path, monkeypatch, caplog) -> None:
    net, ds = _net_and_data(tmp_path)
    monkeypatch.setattr(FB, "ORT_PAYBACK_S", 0.0)
    real = FB._OrtRunner.__call__
    monkeypatch.setattr(
        FB._OrtRunner, "__call__", lambda self, x: [a + 1e-2 for a in real(self, x)]
    )
    with caplog.at_level("WARNING", logger="cvpipe.engine.feature_backends"):
        fs = F.cached_features(net, ds, ds.records, _req(tmp_path, "a"))
    assert json.loads((fs.path / "meta.json").read_text())["backend"] == "torch"
    assert "differ from PyTorch's" in caplog.text and "feature backend: torch" in caplog.text
    # asked for explicitly, the same mismatch is an error, not a silent substitution
    with pytest.raises(F.FeatureBackendError, match="feature_backend: torch"):
        F.cached_features(net, ds, ds.records, _req(tmp_path, "b", backend="onnxruntime"))
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "b").iterdir())


def test_export_failure_falls_back_or_raises(tmp_path: Path, monkeypatch, caplog) -> None:
    net, ds = _net_and_data(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(torch.onnx, "export", broken)
    monkeypatch.setattr(FB, "ORT_PAYBACK_S", 0.0)
    with caplog.at_level("WARNING", logger="cvpipe.engine.feature_backends"):
        fs = F.cached_features(net, ds, ds.records, _req(tmp_path, "a"))
    assert fs.status == "miss" and "unsupported operator" in caplog.text
    assert list((tmp_path / "a" / "onnx").iterdir()) == []  # no half-written graph
    with pytest.raises(F.FeatureBackendError, match="unsupported operator"):
        F.cached_features(net, ds, ds.records, _req(tmp_path, "b", backend="onnxruntime"))
    with pytest.raises(F.FeatureBackendError, match="valid: auto, torch, onnxruntime"):
        F.cached_features(net, ds, ds.records, _req(tmp_path, "c", backend="onnx"))


def test_onnxruntime_needs_cpu_float32(tmp_path: Path) -> None:
    net, ds = _net_and_data(tmp_path)
    req = _req(tmp_path, "c", backend="onnxruntime", amp_dtype=torch.bfloat16)
    with pytest.raises(F.FeatureBackendError, match="amp: off"):
        F.cached_features(net, ds, ds.records, req)


def test_feature_threads_stay_within_the_budget() -> None:
    cpu = torch.device("cpu")
    torch.set_num_threads(1)
    assert F.feature_threads(4, cpu) == (0, 1)  # no decode worker beside a single thread
    torch.set_num_threads(2)
    assert F.feature_threads(4, cpu) == (0, 2)  # decoding in-process beats halving compute
    torch.set_num_threads(4)
    assert F.feature_threads(4, cpu) == (1, 3)
    assert F.feature_threads(0, cpu) == (0, 4)
    torch.set_num_threads(16)
    assert F.feature_threads(4, cpu) == (2, 14)
    assert F.feature_threads(4, cpu, threads=3) == (2, 3)
    assert F.feature_threads(6, torch.device("cuda")) == (6, 16)  # GPU: decode is the work


def test_feature_backend_in_train_config(tmp_path: Path) -> None:
    assert cfg(tmp_path).feature_backend == "auto"
    assert cfg(tmp_path, feature_backend="torch").feature_backend == "torch"
    with pytest.raises(ConfigError, match="feature_backend"):
        cfg(tmp_path, feature_backend="tensorrt")
