"""Predictor: batched, ordered, streaming inference with per-file errors; input expansion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import write_image, write_truncated_jpeg

from cvpipe.engine.checkpoint import save_checkpoint
from cvpipe.engine.runs import ModelCard
from cvpipe.errors import CheckpointError, ConfigError
from cvpipe.inference.classify import Predictor
from cvpipe.inference.predictor import BasePredictor, expand_inputs
from cvpipe.models.classification import create_classifier
from cvpipe.models.heads import HeadSpec
from cvpipe.tasks.registry import TASKS as PREDICTORS  # every task names its predictor

CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def net_card() -> tuple[torch.nn.Module, ModelCard]:
    torch.manual_seed(0)
    net = create_classifier("base_cnn", num_classes=3, weights=None, input_size=32, head=HeadSpec())
    card = ModelCard(
        task="classify",
        classes=CLASSES,
        model="base_cnn",
        head={},
        preprocess=net.preprocess,
        input_size=32,
    )
    return net, card


def test_predict_images_probabilities(net_card) -> None:
    p = Predictor(*net_card)
    ims = [Image.new("RGB", (40, 30), (i * 40, 0, 0)) for i in range(5)] + [
        Image.new("L", (20, 50))
    ]
    probs = p.predict_images(ims)
    assert probs.shape == (6, 3) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert p.predict_images([]).shape == (0, 3)
    top = p.top_k(probs[0], 2)
    assert len(top) == 2 and top[0][1] >= top[1][1] and top[0][0] in CLASSES


def test_predict_paths_order_errors_and_batches(net_card, tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{i}.png", (40, 32), seed=i) for i in range(7)]
    paths.insert(2, write_truncated_jpeg(tmp_path / "trunc.jpg"))
    (tmp_path / "text.jpg").write_text("not an image")
    paths.insert(5, tmp_path / "text.jpg")
    paths.append(tmp_path / "missing.png")
    p = Predictor(*net_card)
    out = list(p.predict_paths(paths, batch_size=3))
    assert [r.index for r in out] == list(range(len(paths)))
    assert [r.path for r in out] == [Path(x) for x in paths]
    bad = {r.path.name: r.error for r in out if r.error}
    assert set(bad) == {"trunc.jpg", "text.jpg", "missing.png"}
    assert bad["missing.png"].startswith("missing")
    good = [r for r in out if r.error is None]
    assert len(good) == 7 and all(r.output.shape == (3,) for r in good)
    # same numbers whatever the batch size, and as predict_images
    single = list(p.predict_paths(paths, batch_size=1))
    for a, b in zip(out, single, strict=True):
        assert (a.output is None) == (b.output is None)
        if a.output is not None:
            assert np.allclose(a.output, b.output, atol=1e-5)
    assert list(p.predict_paths([])) == []


def test_predict_paths_with_workers_matches(net_card, tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{i}.jpg", (64, 48), seed=i) for i in range(6)]
    p = Predictor(*net_card)
    a = [r.output for r in p.predict_paths(paths, batch_size=4, workers=0)]
    b = [r.output for r in p.predict_paths(paths, batch_size=4, workers=2)]
    assert np.allclose(np.stack(a), np.stack(b), atol=1e-6)


def _save_run(run: Path, net: torch.nn.Module, card: ModelCard) -> Path:
    card.save(run / "model_card.json")
    meta = {"task": card.task, "classes": card.classes, "model": card.model}
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": net.state_dict(), "epoch": 1}, meta)
    return run


def test_from_run_dispatches_by_task(net_card, tmp_path: Path) -> None:
    net, card = net_card
    run = _save_run(tmp_path / "run", net, card)
    p = BasePredictor.from_run(run)
    assert isinstance(p, Predictor) and p.card.classes == CLASSES
    ims = [Image.new("RGB", (32, 32), (10, 200, 30))]
    assert np.allclose(p.predict_images(ims), Predictor(net, card).predict_images(ims), atol=1e-6)
    assert "classify" in PREDICTORS and "count" in PREDICTORS


def test_from_run_refuses_detection_and_missing(net_card, tmp_path: Path) -> None:
    net, card = net_card
    run = tmp_path / "det"
    _save_run(run, net, card)
    data = json.loads((run / "model_card.json").read_text())
    data["task"] = "detect"
    (run / "model_card.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="task"):
        Predictor.from_run(run)
    with pytest.raises(CheckpointError, match="model card not found"):
        Predictor.from_run(tmp_path / "nothing")


def test_expand_inputs(tmp_path: Path) -> None:
    write_image(tmp_path / "d" / "x" / "1.png")
    write_image(tmp_path / "d" / "2.jpg")
    (tmp_path / "d" / "notes.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    one = write_image(tmp_path / "one.png")
    files, problems = expand_inputs(
        [
            str(tmp_path / "d"),
            str(one),
            str(tmp_path / "d" / "**" / "*.png"),
            str(tmp_path / "nope.png"),
            str(tmp_path / "empty"),
            str(tmp_path / "*.gif"),
        ]
    )
    names = [f.name for f in files]
    assert names == ["2.jpg", "1.png", "one.png", "1.png"]
    assert [why for _, why in problems] == [
        "file not found",
        "folder holds no image files",
        "pattern matched no files",
    ]
    with pytest.raises(ConfigError, match="not supported"):
        expand_inputs(["https://example.com/a.jpg"])


def test_folded_inference_matches_the_model_and_leaves_it_alone() -> None:
    torch.manual_seed(1)
    net = create_classifier("resnet18", num_classes=3, weights=None, input_size=32, head=HeadSpec())
    g = torch.Generator().manual_seed(2)
    for m in net.modules():  # non-trivial running statistics, so folding changes weights
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    card = ModelCard(task="classify", classes=CLASSES, model="resnet18", head={},
                     preprocess=net.preprocess, input_size=32)  # fmt: skip
    p = Predictor(net, card)
    x = torch.randn(5, 3, 32, 32, generator=g)
    with torch.inference_mode():
        want = net.eval()(x).softmax(dim=1).numpy()
        got = np.stack(p.infer(x))
    assert np.allclose(got, want, atol=1e-5)
    fast = p.inference_net(x)
    assert fast is not p.model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in p.model.modules()) == 20
