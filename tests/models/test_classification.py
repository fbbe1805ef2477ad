from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvpipe.errors import ConfigError, UnknownNameError, WeightsNotFoundError
from cvpipe.models import MODELS, ClassifierNet, HeadSpec, create_classifier, list_models
from cvpipe.models.classification import count_params


@pytest.mark.parametrize(
    "name, dim",
    [
        ("resnet18", 512),
        ("mobilenet_v2", 1280),
        ("mobilenet_v3_small", 1024),
        ("efficientnet_b0", 1280),
        ("vgg16", 512),
        ("base_cnn", 256),
        ("tf_efficientnet_lite0", 1280),
        ("timm/resnet10t", 512),
    ],
)
def test_builds_and_runs_at_small_input(name, dim):
    torch.manual_seed(0)
    net = create_classifier(name, num_classes=3, input_size=64)
    assert isinstance(net, ClassifierNet) and net.name == name
    assert net.feature_dim == dim and net.preprocess.input_size == 64
    net.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = net.backbone(x)
        logits = net(x)
    assert feats.shape == (2, dim)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_registry_has_every_required_model():
    required = {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
        "vgg16", "vgg16_bn", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
        "tf_efficientnet_lite0", "tf_efficientnet_lite2", "custom_cnn", "base_cnn",
    }  # fmt: skip
    assert required <= set(MODELS.names())


def test_builders_are_keyword_only():
    with pytest.raises(TypeError):
        MODELS.get("resnet18")(None, 3)  # type: ignore[misc]
    assert MODELS.get("resnet18")(num_classes=2).head[-1].out_features == 2


def test_param_counts_match_the_reference_architectures():
    assert count_params("resnet50")[0] == 25_557_032  # torchvision resnet50 with its 1000-class fc
    assert count_params("vgg16")[1] == 14_714_688  # seed 003's VGG16 conv base ("Total params")
    assert count_params("mobilenet_v2")[0] == 3_504_872


def test_list_models_reports_family_input_size_and_params():
    infos = {i.name: i for i in list_models("tf_efficientnet_lite*")}
    assert set(infos) == {"tf_efficientnet_lite0", "tf_efficientnet_lite2"}
    assert infos["tf_efficientnet_lite0"].input_size == 224
    assert infos["tf_efficientnet_lite2"].input_size == 260
    assert infos["tf_efficientnet_lite0"].family == "timm"
    assert infos["tf_efficientnet_lite0"].backbone_params > 3_000_000


def test_efficientnet_lite_preprocess_is_half_mean_half_std():
    net = create_classifier("tf_efficientnet_lite0", num_classes=2)
    assert net.preprocess.mean == (0.5, 0.5, 0.5) and net.preprocess.std == (0.5, 0.5, 0.5)
    assert net.preprocess.input_size == 224
    tv = create_classifier("resnet18", num_classes=2)
    assert tv.preprocess.mean == (0.485, 0.456, 0.406) and tv.preprocess.input_size == 224


def test_unknown_names_suggest_close_ones():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet50'"):
        create_classifier("resnet5O", num_classes=2)
    with pytest.raises(UnknownNameError, match="unknown timm model 'resnett18'"):
        create_classifier("timm/resnett18", num_classes=2)


def test_random_init_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="cvpipe"):
        net = create_classifier("base_cnn", num_classes=2)
    assert "randomly initialised" in caplog.text
    assert net.weights_info == {"source": "none"}


def test_custom_models_have_no_imagenet_weights(offline_home):
    with pytest.raises(
        WeightsNotFoundError, match="none exist for this custom model.*--weights none"
    ):
        create_classifier("base_cnn", num_classes=2, weights="imagenet")


def _seed001_forward(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Seed 001's Model.forward, written out with its layer names."""
    pool = nn.MaxPool2d(2, 2)
    x = F.relu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1))
    for i in range(2, 6):
        x = pool(F.relu(F.conv2d(x, p[f"conv{i}.weight"], p[f"conv{i}.bias"], padding=1)))
    x = torch.flatten(x, 1)
    for i in range(1, 4):
        x = F.relu(F.linear(x, p[f"fc{i}.weight"], p[f"fc{i}.bias"]))
    return F.linear(x, p["fc4.weight"], p["fc4.bias"])


def test_custom_cnn_is_seed001_exactly():
    torch.manual_seed(0)
    net = create_classifier("custom_cnn", num_classes=5)
    sd = net.state_dict()
    seed = {
        f"conv{i}.{t}": sd[f"backbone.conv{i}.{t}"] for i in range(1, 6) for t in ("weight", "bias")
    }
    seed |= {
        f"fc{i + 1}.{t}": sd[f"head.{2 * i}.{t}"] for i in range(4) for t in ("weight", "bias")
    }
    assert len(seed) == len(sd) == 18
    shapes = {k: tuple(v.shape) for k, v in seed.items() if k.endswith("weight")}
    assert shapes == {
        "conv1.weight": (16, 3, 3, 3), "conv2.weight": (32, 16, 3, 3), "conv3.weight": (64, 32, 3, 3),
        "conv4.weight": (128, 64, 3, 3), "conv5.weight": (256, 128, 3, 3),
        "fc1.weight": (2048, 14 * 14 * 256), "fc2.weight": (1024, 2048), "fc3.weight": (128, 1024), "fc4.weight": (5, 128),
    }  # fmt: skip
    assert net.preprocess.input_size == 224 and net.preprocess.mean == (0.0, 0.0, 0.0)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(net(x), _seed001_forward(seed, x), atol=1e-5)
    with pytest.raises(ValueError, match="224x224"):
        net.backbone(torch.zeros(1, 3, 64, 64))


def test_custom_cnn_refuses_other_input_sizes():
    with pytest.raises(ConfigError, match="224 px inputs only"):
        create_classifier("custom_cnn", num_classes=5, input_size=128)


def test_head_spec_is_applied():
    net = create_classifier("resnet18", num_classes=5, head=HeadSpec(hidden=[128], dropout=0.2))
    assert [type(m) for m in net.head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert net.head[0].in_features == 512


# ------------------------------------------------------------------ freezing
def _bn_stats(net: ClassifierNet) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in net.backbone.modules() if isinstance(m, nn.BatchNorm2d)]


def _train_step(net: ClassifierNet) -> None:
    opt = torch.optim.SGD(net.trainable_parameters(), lr=0.1)
    net.train()
    loss = F.cross_entropy(net(torch.randn(4, 3, 32, 32) * 3 + 1), torch.tensor([0, 1, 2, 0]))
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_frozen_backbone_keeps_batchnorm_statistics_after_a_training_step():
    torch.manual_seed(0)
    net = create_classifier("resnet18", num_classes=3, freeze="frozen", input_size=32)
    assert all(not p.requires_grad for p in net.backbone.parameters())
    assert all(p.requires_grad for p in net.head.parameters())
    assert len(net.trainable_parameters()) == 2
    before_stats = _bn_stats(net)
    before_conv = net.backbone.conv1.weight.clone()
    before_head = net.head[0].weight.clone()
    _train_step(net)
    assert net.training and not net.backbone.training
    assert all(not m.training for m in net.frozen_batchnorms())
    for a, b in zip(before_stats, _bn_stats(net), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(before_conv, net.backbone.conv1.weight)
    assert not torch.equal(before_head, net.head[0].weight)


def test_last_n_trains_only_the_last_stages():
    torch.manual_seed(0)
    net = create_classifier("resnet18", num_classes=3, freeze="last-n", last_n=1, input_size=32)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("backbone.layer4.", "head.")) for n in trainable)
    assert any(n.startswith("backbone.layer4.") for n in trainable)
    layer3 = _bn_stats_of(net.backbone.layer3)
    layer4 = _bn_stats_of(net.backbone.layer4)
    _train_step(net)
    assert not net.backbone.layer3.training and net.backbone.layer4.training
    assert all(
        torch.equal(a, b) for a, b in zip(layer3, _bn_stats_of(net.backbone.layer3), strict=True)
    )
    assert not all(
        torch.equal(a, b) for a, b in zip(layer4, _bn_stats_of(net.backbone.layer4), strict=True)
    )


def _bn_stats_of(module: nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_full_then_refreeze_and_unfreeze():
    net = create_classifier("mobilenet_v3_small", num_classes=2, freeze="frozen", input_size=32)
    net.freeze("full")
    assert all(p.requires_grad for p in net.parameters())
    net.train()
    assert all(m.training for m in net.modules())
    net.freeze("last-n", last_n=len(net.stages))
    assert all(p.requires_grad for p in net.parameters())


def test_freeze_errors():
    net = create_classifier("base_cnn", num_classes=2)
    with pytest.raises(ConfigError, match="did you mean 'frozen'"):
        net.freeze("frozn")
    with pytest.raises(ConfigError, match="last_n=9 but base_cnn has 4 backbone stages"):
        net.freeze("last-n", last_n=9)


def test_timm_stages_cover_the_backbone():
    net = create_classifier(
        "tf_efficientnet_lite0", num_classes=2, freeze="last-n", last_n=1, input_size=32
    )
    trainable = {
        n.split(".")[1]
        for n, p in net.named_parameters()
        if p.requires_grad and n.startswith("backbone.")
    }
    assert trainable == {"conv_head", "bn2"}
    assert net.stages[0] == ["conv_stem", "bn1"] and net.stages[1] == ["blocks.0"]
