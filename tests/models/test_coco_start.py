"""COCO starts: kept tensors, class-dependent layers rebuilt, COCO rows for matching class names."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torchvision.models import detection as tvd

from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.models.coco_start import (
    CLASS_LAYERS,
    coco_class_mapping,
    load_coco_start,
    torchvision_coco_labels,
)
from cvpipe.models.detection import create_detector

SSDLITE_CLS = [f"head.classification_head.module_list.{i}.1" for i in range(6)]


def _coco_state(arch: str, seed: int = 0, **kw: Any) -> dict[str, torch.Tensor]:
    """torchvision's own architecture for COCO's 91 channels, random values."""
    torch.manual_seed(seed)
    model = getattr(tvd, arch)(weights=None, weights_backbone=None, num_classes=91, **kw)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def ssdlite_state() -> dict[str, torch.Tensor]:
    return _coco_state("ssdlite320_mobilenet_v3_large")


def _fresh(name: str, classes: list[str]) -> Any:
    torch.manual_seed(123)
    return create_detector(name, num_classes=len(classes))


def test_ssdlite_keeps_everything_but_the_classification_convs(
    ssdlite_state: dict[str, torch.Tensor],
) -> None:
    classes = ["Apple", "widget"]
    det = _fresh("ssdlite320_mobilenet_v3_large", classes)
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    report = load_coco_start(
        det, ssdlite_state, coco_labels=torchvision_coco_labels(), classes=classes, source="t"
    )
    assert report.class_modules == SSDLITE_CLS
    assert report.mapping == {"Apple": 53}
    assert report.new_classes == ["widget"]
    after = det.model.state_dict()
    class_keys = {f"{m}.{p}" for m in SSDLITE_CLS for p in ("weight", "bias")}
    assert set(report.kept) == set(after) - class_keys
    for k in report.kept:  # backbone, extras, regression head: COCO values
        assert torch.equal(after[k], ssdlite_state[k]), k
    for key in class_keys:  # anchors x (background, apple, widget) channels
        got, coco, fresh = after[key], ssdlite_state[key], before[key]
        a = got.shape[0] // 3
        got, fresh = got.reshape(a, 3, -1), fresh.reshape(a, 3, -1)
        coco = coco.reshape(a, 91, -1)
        assert torch.equal(got[:, 0], coco[:, 0])  # background row kept
        assert torch.equal(got[:, 1], coco[:, 53])  # apple <- COCO 53
        assert torch.equal(got[:, 2], fresh[:, 2])  # widget: builder's initialisation
    line = report.summary()
    assert "kept" in line and "Apple<-coco 53 (apple)" in line and "widget" in line
    assert "module_list.*.1 (6 layers)" in line
    assert report.to_json()["class_layers"] == SSDLITE_CLS


def test_no_matching_class_reinitialises_the_class_layers(
    ssdlite_state: dict[str, torch.Tensor],
) -> None:
    classes = ["burger", "fries"]
    det = _fresh("ssdlite320_mobilenet_v3_large", classes)
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    # a cvpipe Detector's state ("model." prefix) works as well
    prefixed = {f"model.{k}": v for k, v in ssdlite_state.items()}
    report = load_coco_start(det, prefixed, coco_labels=torchvision_coco_labels(), classes=classes)
    assert report.mapping == {} and report.new_classes == classes
    after = det.model.state_dict()
    for m in SSDLITE_CLS:
        assert torch.equal(after[f"{m}.weight"], before[f"{m}.weight"])
    assert "re-initialised" in report.summary()
    assert "no dataset class is a COCO class" in report.summary()


def test_faster_rcnn_box_deltas_follow_their_class() -> None:
    state = _coco_state("fasterrcnn_mobilenet_v3_large_fpn")
    classes = ["hot_dog", "thing", "ORANGE"]
    det = _fresh("fasterrcnn_mobilenet_v3_large_fpn", classes)
    report = load_coco_start(det, state, coco_labels=torchvision_coco_labels(), classes=classes)
    assert report.class_modules == [
        "roi_heads.box_predictor.cls_score",
        "roi_heads.box_predictor.bbox_pred",
    ]
    assert report.mapping == {"hot_dog": 58, "ORANGE": 55}
    sd = det.model.state_dict()
    deltas = sd["roi_heads.box_predictor.bbox_pred.weight"].reshape(4, 4, -1)
    coco = state["roi_heads.box_predictor.bbox_pred.weight"].reshape(91, 4, -1)
    assert torch.equal(deltas[1], coco[58]) and torch.equal(deltas[3], coco[55])
    assert torch.equal(deltas[0], coco[0])
    scores = sd["roi_heads.box_predictor.cls_score.bias"]
    assert scores[1] == state["roi_heads.box_predictor.cls_score.bias"][58]
    # FrozenBatchNorm checkpoints have no num_batches_tracked: filled, not an error
    frozen = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    det2 = _fresh("fasterrcnn_mobilenet_v3_large_fpn", classes)
    r2 = load_coco_start(det2, frozen, coco_labels=torchvision_coco_labels(), classes=classes)
    assert r2.filled and len(r2.kept) == len(report.kept) - len(r2.filled)


def test_other_architecture_is_refused(ssdlite_state: dict[str, torch.Tensor]) -> None:
    det = _fresh("ssdlite320_mobilenet_v2", ["apple"])
    with pytest.raises(CheckpointError, match="do not fit ssdlite320_mobilenet_v2"):
        load_coco_start(
            det, ssdlite_state, coco_labels=torchvision_coco_labels(), classes=["apple"]
        )


def test_a_head_with_another_channel_order(ssdlite_state: dict[str, torch.Tensor]) -> None:
    """Another detector's COCO head (e.g. TF's) passes its own channel -> name table."""
    labels = {0: "background", 7: "apple"}
    det = _fresh("ssdlite320_mobilenet_v3_large", ["apple"])
    report = load_coco_start(det, ssdlite_state, coco_labels=labels, classes=["apple"])
    assert report.mapping == {"apple": 7}
    w = det.model.state_dict()[f"{SSDLITE_CLS[0]}.weight"]
    coco = ssdlite_state[f"{SSDLITE_CLS[0]}.weight"]
    assert torch.equal(
        w.reshape(-1, 2, *w.shape[1:])[:, 1], coco.reshape(-1, 91, *w.shape[1:])[:, 7]
    )
    with pytest.raises(ConfigError, match="outside the state's 91 class channels"):
        load_coco_start(
            _fresh("ssdlite320_mobilenet_v3_large", ["apple"]),
            ssdlite_state,
            coco_labels={0: "bg", 200: "apple"},
            classes=["apple"],
        )


def test_class_map_and_bad_inputs(ssdlite_state: dict[str, torch.Tensor]) -> None:
    labels = torchvision_coco_labels()
    assert coco_class_mapping(["plane", "car"], labels, {"plane": "Airplane"}) == {
        "plane": 5,
        "car": 3,
    }
    with pytest.raises(ConfigError, match="not a COCO class"):
        coco_class_mapping(["plane"], labels, {"plane": "jet"})
    with pytest.raises(ConfigError, match="not a dataset class"):
        coco_class_mapping(["plane"], labels, {"boat": "boat"})
    det = _fresh("ssdlite320_mobilenet_v3_large", ["a", "b"])
    with pytest.raises(ConfigError, match="1 class names for a detector with 2 classes"):
        load_coco_start(det, ssdlite_state, coco_labels=labels, classes=["a"])
    assert len(CLASS_LAYERS) == 5
