"""ONNX export: parity with PyTorch, int8, metadata, model card, serving the export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from tests.evaluation.test_evaluate import make_dataset, make_run
from tests.serve.conftest import image_bytes

from cvpipe.cli.main import main
from cvpipe.engine.runs import ModelCard
from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.export.onnx import export_onnx, read_onnx_card, sample_inputs
from cvpipe.inference.classify import Predictor
from cvpipe.inference.loading import load_model
from cvpipe.models.preprocess import Preprocess
from cvpipe.serve.app import create_app
from cvpipe.serve.runtime import OnnxRuntime, load_runtime, numpy_transform


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("onnx")
    run = make_run(root / "run", make_dataset(root / "ds"))
    export_onnx(run)
    return run


@pytest.mark.slow
def test_fp32_parity_and_files(exported: Path) -> None:
    card = json.loads((exported / "model_card.json").read_text())
    onnx_info = card["extra"]["onnx"]
    assert onnx_info["precision"] == "fp32" and onnx_info["max_abs_diff"] <= 1e-4
    assert onnx_info["input"]["shape"] == ["batch", 3, 32, 32]
    assert not list(exported.glob(".onnx-*")) and not list(exported.glob("*.tmp"))
    meta_card = read_onnx_card(exported / "model.onnx")
    assert meta_card["classes"] == ["a", "b", "c"] and meta_card["preprocess"]["input_size"] == 32
    ModelCard.from_json(meta_card)  # the embedded card is a valid card
    # dynamic batch: another batch size than the export's, compared with PyTorch
    net, _ = load_model(exported)
    x = sample_inputs(32, 5, seed=7)
    sess = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).softmax(1).numpy()
    assert got.shape == (5, 3) and np.abs(got - ref).max() <= 1e-4


@pytest.mark.slow
def test_served_onnx_matches_pytorch_predictor(exported: Path) -> None:
    rt = load_runtime(exported)
    assert isinstance(rt, OnnxRuntime)
    pred = Predictor.from_run(exported)
    im = Image.open(__import__("io").BytesIO(image_bytes((64, 40)))).convert("RGB")
    ref = pred.predict_images([im])[0]
    got = rt.run([rt.prepare(im)])[0]
    assert (
        got.argmax() == ref.argmax() and np.abs(got - ref).max() < 5e-3
    )  # PIL vs torchvision resize
    with TestClient(create_app(exported / "model.onnx")) as c:  # a bare model.onnx serves too
        info = c.get("/v1/model").json()
        assert info["backend"] == "onnxruntime" and info["classes"] == ["a", "b", "c"]
        assert c.post("/v1/predict", content=image_bytes()).status_code == 200


@pytest.mark.slow
def test_int8_and_cli(exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run8"
    shutil.copytree(exported, run)
    (run / "model.onnx").unlink()
    assert main(["export", str(run), "--int8", "--min-top1", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "int8" in out and "top-1 agreement" in out
    info = json.loads((run / "model_card.json").read_text())["extra"]["onnx"]
    assert (
        info["precision"] == "int8" and info["top1_agreement"] >= 0.5 and info["tolerance"] is None
    )
    assert (run / "model.onnx").stat().st_size < (exported / "model.onnx").stat().st_size


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path / "run", make_dataset(tmp_path / "ds"))
    with pytest.raises(ConfigError):
        export_onnx(run, opset=9)
    card = json.loads((run / "model_card.json").read_text())
    card["task"] = "detect"
    (run / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="detect"):
        export_onnx(run)
    assert main(["export", str(tmp_path / "nope")]) != 0
    assert "model card not found" in capsys.readouterr().err
    assert not (run / "model.onnx").exists()


@pytest.mark.parametrize(("size", "wh"), [(32, (40, 32)), (64, (300, 500)), (32, (20, 10))])
def test_numpy_transform_matches_eval_transform(size: int, wh: tuple[int, int]) -> None:
    pre = Preprocess(input_size=size, resize_size=int(size * 1.14))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : wh[1], 0 : wh[0]]
    arr = np.stack(
        [np.sin(xx / 7 + c) * 100 + 128 + rng.normal(0, 10, xx.shape) for c in range(3)], -1
    )
    im = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    a = pre.eval_transform()(im).numpy()
    b = numpy_transform(pre, im)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1.5 / 255 / min(pre.std)  # at most ~1 grey level apart
