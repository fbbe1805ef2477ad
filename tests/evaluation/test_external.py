"""Benchmark detectors: hand-made ONNX graphs (TF and torchvision layouts), the packaged
TF SSD-MobileNetV2 through OpenCV DNN, label and class maps, evaluation like a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.engine.tinydetect import make_detect_dataset

from cvpipe.errors import ConfigError, MissingDependencyError
from cvpipe.evaluation.external.labels import read_class_map, read_label_map
from cvpipe.evaluation.external.load import evaluate_benchmark, load_benchmark
from cvpipe.models.coco_assets import COCO_LABELS, builtin_files


def const_onnx(path: Path, layout: str) -> Path:
    """An ONNX detector returning fixed boxes whatever the image.

    tf: uint8 NHWC input of any size; normalised [ymin, xmin, ymax, xmax] boxes; COCO ids
    5 (airplane), 3 (car), 1 (person). torchvision: float NCHW 64x64 input; xyxy pixels.
    """
    import onnx
    from onnx import TensorProto, helper

    ids = [5.0, 3.0, 1.0]
    scores = [0.9, 0.6, 0.8]
    if layout == "tf":
        boxes = [[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 1.0, 1.0], [0, 0, 1, 1]]
        inp = helper.make_tensor_value_info("image_tensor", TensorProto.UINT8, [1, None, None, 3])
        outs = {"detection_boxes": ([1, 3, 4], boxes), "detection_scores": ([1, 3], scores),
                "detection_classes": ([1, 3], ids), "num_detections": ([1], [3.0])}  # fmt: skip
        types = dict.fromkeys(outs, TensorProto.FLOAT)
    else:
        inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, [3, 64, 64])
        outs = {"boxes": ([3, 4], [[8, 16, 40, 48], [32, 32, 64, 64], [0, 0, 64, 64]]),
                "labels": ([3], [5, 3, 1]), "scores": ([3], scores)}  # fmt: skip
        types = {
            "boxes": TensorProto.FLOAT,
            "labels": TensorProto.INT64,
            "scores": TensorProto.FLOAT,
        }
    nodes, outputs = [], []
    for name, (shape, value) in outs.items():
        t = helper.make_tensor(
            f"{name}_c", types[name], shape, np.asarray(value).reshape(-1).tolist()
        )
        nodes.append(helper.make_node("Constant", [], [name], value=t))
        outputs.append(helper.make_tensor_value_info(name, types[name], shape))
    graph = helper.make_graph(nodes, "const_det", [inp], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture
def class_map(tmp_path: Path) -> Path:
    p = tmp_path / "map.yaml"
    p.write_text("airplane: plane\ncar: car\ntruck: car\n")
    return p


def test_coco_label_map_has_90_ids_80_classes() -> None:
    assert len(COCO_LABELS) == 80 and max(COCO_LABELS) == 90
    assert COCO_LABELS[5] == "airplane" and COCO_LABELS[1] == "person" and 12 not in COCO_LABELS


@pytest.mark.parametrize("layout", ["tf", "torchvision"])
def test_onnx_detector_maps_classes_and_scales_boxes(
    tmp_path: Path, class_map: Path, layout: str
) -> None:
    model = const_onnx(tmp_path / f"{layout}.onnx", layout)
    det = load_benchmark(str(model), classes=["plane", "car"], class_map=class_map)
    out = det.predict_images([Image.new("RGB", (200, 100)), Image.new("L", (100, 50))])
    assert len(out) == 2
    first = out[0]
    assert first["labels"].tolist() == [0, 1]  # person (unmapped) dropped, best first
    assert first["scores"].tolist() == pytest.approx([0.9, 0.6])
    assert first["boxes"].dtype == np.float32 and first["boxes"].shape == (2, 4)
    expected = [40.0, 10.0, 120.0, 50.0] if layout == "tf" else [25.0, 25.0, 125.0, 75.0]
    assert first["boxes"][0].tolist() == pytest.approx(expected)
    assert out[1]["boxes"][0].tolist() == pytest.approx([v / 2 for v in expected])
    det.set_postprocess(score_thresh=0.7, detections_per_img=5)
    assert det.predict_images([Image.new("RGB", (200, 100))])[0]["labels"].tolist() == [0]


def test_benchmark_evaluated_like_a_run(tmp_path: Path, class_map: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", splits={"val": 2, "test": 3})
    model = const_onnx(tmp_path / "tf.onnx", "tf")
    res = evaluate_benchmark(str(model), data=ds.root, out=tmp_path / "ev", class_map=class_map)
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["benchmark"] == str(model) and m["task"] == "detect" and m["n"] == 3
    for key in ("map", "map_50", "mar_100", "per_class", "iou_statistics", "counting"):
        assert key in m
    assert m["counting"]["threshold_source"].startswith("chosen on val")
    assert len((tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()) == 3
    assert res.report is not None and res.report.is_file()


def test_class_map_and_label_map_errors(tmp_path: Path) -> None:
    bench = sorted(COCO_LABELS.values())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"aeroplane": "plane"}))
    with pytest.raises(ConfigError, match="did you mean 'airplane'"):
        read_class_map(bad, bench, ["plane"])
    bad.write_text(json.dumps({"airplane": "Plane"}))
    with pytest.raises(ConfigError, match="not a dataset class.*did you mean 'plane'"):
        read_class_map(bad, bench, ["plane"])
    with pytest.raises(ConfigError, match="class-map"):
        read_class_map(None, bench, ["Airplane"])
    assert read_class_map(None, bench, ["airplane", "x"]) == {"airplane": "airplane"}
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid class map"):
        read_class_map(bad, bench, ["plane"])
    txt = tmp_path / "labels.txt"
    txt.write_text("cat\n\ndog\n")
    assert read_label_map(txt) == {1: "cat", 3: "dog"}
    with pytest.raises(ConfigError, match="expected an .onnx file"):
        load_benchmark("yolo.weights", classes=["airplane"])
    with pytest.raises(ConfigError, match="not found"):
        load_benchmark(str(tmp_path / "none.onnx"), classes=["airplane"])


def test_opencv_dnn_packaged_ssd_mobilenet_v2(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    try:
        builtin_files("ssd_mobilenet_v2_coco")
    except Exception as exc:  # noqa: BLE001 - the optional package is not installed
        pytest.skip(str(exc))
    cmap = tmp_path / "map.json"
    cmap.write_text(json.dumps({"airplane": "Airplane", "person": "Person", "umbrella": "Person"}))
    det = load_benchmark("ssd_mobilenet_v2_coco", classes=["Airplane", "Person"], class_map=cmap)
    assert det.card.task == "detect" and det.card.classes == ["Airplane", "Person"]
    rng = np.random.default_rng(0)
    ims = [Image.fromarray((rng.random((300, 300, 3)) * 255).astype(np.uint8)),
           Image.fromarray(np.full((240, 320, 3), 200, np.uint8))]  # fmt: skip
    for im, out in zip(ims, det.predict_images(ims), strict=True):
        k = len(out["scores"])
        assert out["boxes"].shape == (k, 4) and out["labels"].shape == (k,) and k <= 100
        assert set(out["labels"].tolist()) <= {0, 1}
        assert np.all(np.diff(out["scores"]) <= 0) and np.all(
            (out["scores"] >= 0) & (out["scores"] <= 1)
        )
        if k:
            b = out["boxes"]
            assert np.all(b[:, 2] >= b[:, 0]) and np.all(b[:, 3] >= b[:, 1])
            assert (
                b.min() >= 0 and b[:, [0, 2]].max() <= im.width and b[:, [1, 3]].max() <= im.height
            )


def test_opencv_without_tensorflow_importer_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenCV 5 has no cv2.dnn.readNetFromTensorflow: one line saying which OpenCV to install."""
    import sys
    import types

    fake = types.ModuleType("cv2")
    fake.__version__ = "5.1.0"  # type: ignore[attr-defined]
    fake.dnn = types.SimpleNamespace(blobFromImages=lambda *a, **k: None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cv2", fake)
    pb, txt = tmp_path / "g.pb", tmp_path / "g.pbtxt"
    pb.write_bytes(b"\x00")
    txt.write_text("node {}")
    with pytest.raises(MissingDependencyError) as info:
        load_benchmark(str(pb), classes=["person"])
    msg = str(info.value)
    assert "\n" not in msg and "OpenCV 5.1.0" in msg and "opencv-python-headless>=4.8,<5" in msg


def test_opencv_tf_importer_present_on_the_locked_opencv() -> None:
    """The OpenCV the lock installs reads TensorFlow graphs (pyproject bounds it below 5)."""
    cv2 = pytest.importorskip("cv2")
    from cvpipe.evaluation.external.detectors import opencv_tf_importer

    assert callable(opencv_tf_importer(cv2))
