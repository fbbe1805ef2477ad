from __future__ import annotations

import pytest
import torch
from torch import nn

from cvpipe.models.fuse import fold_batchnorm


def _randomise_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return module.eval()


def _count_bn(module: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in module.modules())


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_resnet_folds_every_batchnorm_and_keeps_its_outputs(channels_last: bool) -> None:
    import torchvision

    net = _randomise_bn(torchvision.models.resnet18(weights=None, num_classes=5))
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want = net(x)
    res = fold_batchnorm(net, x[:2])
    assert res.folded == 20 and _count_bn(res.module) == 0
    assert _count_bn(net) == 20  # the original is untouched
    with torch.inference_mode():
        got = res.module(x)
        again = net(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, want, rtol=0, atol=0)


def test_timm_batchnorm_with_activation_keeps_the_activation() -> None:
    timm = pytest.importorskip("timm")
    net = _randomise_bn(timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = net(x)
    res = fold_batchnorm(net, x)
    assert res.folded == _count_bn(net) > 0 and _count_bn(res.module) == 0
    with torch.inference_mode():
        got = res.module(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


class _SharedOutput(nn.Module):
    """The convolution's output feeds the BatchNorm and a skip: folding would change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


def test_a_convolution_output_used_elsewhere_is_left_alone() -> None:
    net = _randomise_bn(_SharedOutput())
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    res = fold_batchnorm(net, x)
    assert res.module is net and res.folded == 0 and res.max_diff > 1e-3


def test_training_mode_and_models_without_batchnorm_come_back_as_they_are() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert fold_batchnorm(net.train(), torch.randn(1, 3, 8, 8)).module is net
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
    res = fold_batchnorm(plain, torch.randn(1, 3, 8, 8))
    assert res.module is plain and res.folded == 0
