"""Cutting a backbone into a frozen stem and a trainable tail (freeze: last-n)."""

from __future__ import annotations

import pytest
import torch

from cvpipe.models.classification import create_classifier
from cvpipe.models.cut import CutError, cut_backbone


@pytest.mark.parametrize(
    ("model", "last_n"),
    [("tf_efficientnet_lite0", 3), ("mobilenet_v2", 2), ("resnet18", 1), ("mobilenet_v3_small", 2)],
)
def test_stem_and_tail_reproduce_the_backbone(model: str, last_n: int) -> None:
    torch.manual_seed(0)
    net = create_classifier(model, num_classes=3, input_size=64, freeze="last-n", last_n=last_n)
    cut = cut_backbone(net, last_n)
    assert cut.at == len(net.stages) - last_n and cut.name == f"{model}[:{cut.at}]"
    net.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        mid = cut.stem(x)
        assert tuple(mid.shape[1:]) == cut.shape and mid.dim() == 4
        torch.testing.assert_close(cut.tail(mid), net.backbone(x), rtol=1e-4, atol=1e-4)
    # the stem is exactly the frozen part, the tail exactly the trained part of the backbone
    stem_ids = {id(p) for p in cut.stem.parameters()}
    tail_ids = {id(p) for p in cut.tail.parameters()}
    frozen = {id(p) for p in net.backbone.parameters() if not p.requires_grad}
    trained = {id(p) for p in net.backbone.parameters() if p.requires_grad}
    assert stem_ids == frozen and tail_ids == trained and not stem_ids & tail_ids


def test_unsupported_backbone_and_nothing_frozen_are_errors() -> None:
    net = create_classifier("base_cnn", num_classes=2, input_size=32, freeze="last-n", last_n=1)
    with pytest.raises(CutError, match="no stem/tail cut known for BaseCNNBackbone"):
        cut_backbone(net, 1)
    lite = create_classifier("tf_efficientnet_lite0", num_classes=2, input_size=32)
    with pytest.raises(CutError, match="leaves no frozen stage"):
        cut_backbone(lite, len(lite.stages))
