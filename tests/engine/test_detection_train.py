"""Training detectors through the trainer: run dir, negatives, bad boxes, bad labels, resume, NaN."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvpipe.config import load_config
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.engine.checkpoint import ckpt_meta, load_checkpoint
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.detection import detection_step
from cvpipe.engine.launch import train_distributed
from cvpipe.engine.loop import StepContext, StepOutput
from cvpipe.engine.runs import ModelCard, read_metrics
from cvpipe.engine.trainer import train
from cvpipe.errors import ConfigError, CvpipeError, DatasetFormatError, TrainingDiverged
from cvpipe.inference.loading import load_model
from cvpipe.models.detection import create_detector
from cvpipe.models.detector import Detector
from cvpipe.tasks import get_task

SIZE = 64
CLASSES = ["red", "blue"]
COLOURS = [(230, 30, 30), (30, 40, 230)]

BASE = [
    "model=ssdlite320_mobilenet_v2", "weights=none", f"input_size={SIZE}", "epochs=1", "batch_size=4",
    "workers=0", "device=cpu", "health.enabled=false", "optimizer.lr=0.001",
]  # fmt: skip


def cfg(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, overrides=[*BASE, *overrides])


def make_detect_dataset(
    root: Path, n_train: int = 8, n_val: int = 4, bad: bool = False, seed: int = 0
) -> Path:
    """Coloured rectangles on grey; every 4th image has no box. ``bad`` adds one box
    reaching outside the image and one zero-width box to the first training image."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_train + n_val):
        arr = np.full((SIZE, SIZE + 16, 3), 150, np.uint8)
        boxes: list[list[float]] = []
        labels: list[int] = []
        if i % 4 != 3:
            c = i % 2
            x, y = int(rng.integers(0, 40)), int(rng.integers(0, 30))
            arr[y : y + 28, x : x + 34] = COLOURS[c]
            boxes.append([x, y, x + 34, y + 28])
            labels.append(c)
        if bad and i == 0:
            boxes += [[60.0, 40.0, 100.0, 90.0], [5.0, 5.0, 5.0, 20.0]]
            labels += [1, 0]
        rel = f"images/{i:03d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / rel, quality=95)
        split = "train" if i < n_train else "val"
        records.append(
            Record(
                id=f"img{i:03d}",
                file=rel,
                width=SIZE + 16,
                height=SIZE,
                split=split,
                boxes=boxes,
                labels=labels,
            )
        )
    Dataset(root, DatasetInfo(name="tinydet", task="detect", classes=CLASSES), records).save()
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    """One 2-epoch run on data with negatives, a box outside the image and a degenerate box."""
    base = tmp_path_factory.mktemp("det")
    ds = make_detect_dataset(base / "ds", bad=True)
    result = train(
        ds,
        base / "run",
        cfg("epochs=2", "freeze_pattern=model\\.backbone\\.features\\.0\\.[0-3]\\."),
    )
    return ds, base / "run", result


def test_tiny_run_writes_a_complete_run_dir(tiny_run) -> None:
    _, run, result = tiny_run
    for name in (
        "config.yaml",
        "dataset.lock",
        "metrics.jsonl",
        "model_card.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (run / name).is_file(), name
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        for key in ("train.loss", "train.loss.classification", "train.loss.bbox_regression", "val.loss",
                    "val.loss.classification", "val.loss_gap", "val.mAP", "val.mAP50", "val.mAP75", "val.AR100",
                    "steps_per_s", "img_per_s"):  # fmt: skip
            assert key in r, key
        assert r["val.loss_gap"] == pytest.approx(r["val.loss"] - r["train.loss"])
        assert 0.0 <= r["val.mAP"] <= 1.0 and r["steps_per_s"] > 0 and r["img_per_s"] > 0
        assert r["train.images"] == 8 and r["val.images"] == 4
    assert any(r["kind"] == "step" for r in read_metrics(run, kind=None))
    card = json.loads((run / "model_card.json").read_text())
    assert (
        card["task"] == "detect"
        and card["classes"] == CLASSES
        and card["model"] == "ssdlite320_mobilenet_v2"
    )
    assert card["input_size"] == SIZE and card["preprocess"]["input_size"] == SIZE
    assert set(card["thresholds"]) >= {"score", "nms_iou", "detections_per_img", "count_score"}
    assert card["detector"]["classification_weight"] == 1.0 and card["detector"]["num_classes"] == 2
    assert card["metrics"]["monitor"] == "val.mAP" and card["metrics"]["mode"] == "max"
    assert card["extra"]["negative_images"] == 2 and card["extra"]["frozen_parameters"] > 0
    assert result.best_epoch == card["metrics"]["best_epoch"]


def test_checkpoints_load_safely_and_rebuild_the_detector(tiny_run) -> None:
    _, run, _ = tiny_run
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")  # weights_only=True inside
    meta = ckpt_meta(ckpt)
    assert meta["task"] == "detect" and ckpt["epoch"] == 2
    det, card = load_model(run, "last")
    assert isinstance(det, Detector) and card.task == "detect" and not det.training
    with torch.no_grad():
        out = det([torch.rand(3, SIZE, SIZE + 16)])
    assert set(out[0]) == {"boxes", "scores", "labels"}
    assert bool((out[0]["labels"] < 2).all())


def test_frozen_pattern_parameters_do_not_move(tiny_run) -> None:
    _, run, _ = tiny_run
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    torch.manual_seed(0)  # the trainer builds the model right after seeding with config.seed
    fresh = create_detector("ssdlite320_mobilenet_v2", num_classes=2, input_size=SIZE)
    frozen = [
        k for k, _ in fresh.named_parameters() if k.startswith("model.backbone.features.0.0.")
    ]
    trained = [k for k, _ in fresh.named_parameters() if k.startswith("model.head.")]
    state = fresh.state_dict()
    assert frozen and all(torch.equal(ckpt["model"][k], state[k]) for k in frozen)
    assert any(not torch.equal(ckpt["model"][k], state[k]) for k in trained)


def test_bad_boxes_are_clipped_or_dropped_and_reported(tiny_run) -> None:
    _, run, _ = tiny_run
    rows = [json.loads(line) for line in (run / "problems.jsonl").read_text().splitlines()]
    kinds = sorted((r["id"], r["box"], r["kind"], r["action"]) for r in rows)
    assert kinds == [
        ("img000", 1, "box_outside_image", "clipped box"),
        ("img000", 2, "degenerate_box", "dropped box"),
    ]
    card = ModelCard.load(run / "model_card.json")
    assert card.extra["boxes_clipped"] == 1 and card.extra["boxes_dropped"] == 1


def test_degenerate_boxes_never_reach_the_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_detect_dataset(tmp_path / "ds", n_train=4, n_val=2, bad=True)
    seen: list[torch.Tensor] = []
    real_forward = Detector.forward

    def spy(self, images, targets=None):
        if targets is not None:
            seen.extend(t["boxes"] for t in targets)
        return real_forward(self, images, targets)

    monkeypatch.setattr(Detector, "forward", spy)
    train(ds, tmp_path / "run", cfg())
    assert seen
    for boxes in seen:
        assert bool(
            ((boxes[:, 2] - boxes[:, 0]) > 0).all() and ((boxes[:, 3] - boxes[:, 1]) > 0).all()
        )
        assert bool((boxes[:, 2] <= SIZE + 16).all() and (boxes[:, 3] <= SIZE).all())


def test_batches_of_only_negatives_train() -> None:
    torch.manual_seed(0)
    det = create_detector("ssdlite320_mobilenet_v2", num_classes=2, input_size=SIZE)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    batch = ([torch.rand(3, SIZE, SIZE), torch.rand(3, SIZE, SIZE)], [empty, empty], [])
    out = detection_step(det, batch, StepContext(torch.device("cpu"), torch.nn.Identity()))
    assert out.n == 2 and torch.isfinite(out.loss) and out.parts is not None
    assert out.parts["bbox_regression"] == 0.0 and out.parts["classification"] > 0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in det.parameters() if p.grad is not None)


def test_class_id_outside_the_model_is_a_clear_error(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", n_train=4, n_val=2)
    lines = (ds / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["labels"] = [7]
    lines[0] = json.dumps(rec)
    (ds / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"labels \[7\].*0\.\.1") as exc:
        train(ds, tmp_path / "run", cfg())
    assert "manifest.jsonl" in str(exc.value)


def test_resume_continues_the_run(tiny_run, tmp_path: Path) -> None:
    ds, run, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    result = train(
        ds,
        copy,
        cfg("epochs=3", "freeze_pattern=model\\.backbone\\.features\\.0\\.[0-3]\\."),
        resume=True,
    )
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert read_metrics(copy)[:2] == read_metrics(run)
    assert load_checkpoint(copy / "checkpoints" / "last.pt")["epoch"] == 3
    problems = (copy / "problems.jsonl").read_text().splitlines()
    assert len(problems) == 2  # reported once, not again on resume


def test_nan_loss_stops_cleanly_keeping_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_detect_dataset(tmp_path / "ds", n_train=4, n_val=2)
    calls = {"n": 0}

    def poisoned(model, batch, ctx) -> StepOutput:
        out = detection_step(model, batch, ctx)
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 2's only step
            return StepOutput(out.loss * float("nan"), out.n, 0, out.parts)
        return out

    monkeypatch.setattr(type(get_task("detect")), "step_function", lambda self: poisoned)
    with pytest.raises(TrainingDiverged, match="epoch 2, step 1"):
        train(ds, tmp_path / "run", cfg("epochs=2"))
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["freeze=last-n"], "freeze: last-n is for classifiers.*freeze_pattern"),
        (["model=retinanet_resnet50_fpn", "freeze=frozen"], "needs an SSD-family detector"),
        (["augment.crop=random"], "detector.augment"),
        (["class_weights=auto"], "not used by detectors"),
        (["model=resnet18"], "is a classifier.*ssdlite320_mobilenet_v2"),
        (["freeze_pattern=nomatch_xyz"], "matches no parameter"),
    ],
)
def test_classifier_only_settings_are_clear_errors(
    tmp_path: Path, overrides: list[str], match: str
) -> None:
    ds = make_detect_dataset(tmp_path / "ds", n_train=4, n_val=2)
    with pytest.raises(ConfigError, match=match):
        train(ds, tmp_path / "run", cfg(*overrides))


def test_data_parallel_detection_is_refused_clearly(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", n_train=4, n_val=2)
    with pytest.raises(ConfigError, match="--nproc 2.*detectors"):
        train_distributed(ds, tmp_path / "run", cfg(), nproc=2)


def test_early_stopping_metric_stays_as_set(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", n_train=4, n_val=2)
    result = train(ds, tmp_path / "run", cfg("early_stopping.metric=val.loss"))
    card = ModelCard.load(tmp_path / "run" / "model_card.json")
    assert card.metrics["monitor"] == "val.loss" and card.metrics["mode"] == "min"
    assert result.best_epoch == 1


def test_freeze_pattern_is_refused_for_classifiers(tmp_path: Path) -> None:
    from tests.engine.tinydata import make_dataset

    ds = make_dataset(tmp_path / "cls", classes=2, per_class=4)
    with pytest.raises(CvpipeError, match="freeze_pattern applies to detectors"):
        train(
            ds,
            tmp_path / "run",
            load_config(TrainConfig, overrides=["freeze_pattern=layer1", "weights=none"]),
        )


class _ToyBN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trained = torch.nn.BatchNorm2d(3, momentum=0.03)
        self.frozen = torch.nn.BatchNorm2d(3)

    def forward(self, images, targets):
        x = torch.stack(images)
        return self.frozen(self.trained(x))


def test_precise_bn_averages_the_batch_statistics_of_trained_layers_only() -> None:
    from cvpipe.engine.detection import recompute_bn_stats

    torch.manual_seed(0)
    batches = [
        ([torch.randn(3, 4, 4) * (1 + i) + i for _ in range(2)], [{}, {}], []) for i in range(3)
    ]
    toy = _ToyBN().train()
    toy.frozen.eval()
    frozen_before = toy.frozen.running_mean.clone()
    used = recompute_bn_stats(
        toy, batches, StepContext(torch.device("cpu"), torch.nn.Identity()), batches=2
    )
    assert used == 2
    expected = torch.stack([torch.stack(b[0]).mean(dim=(0, 2, 3)) for b in batches[:2]]).mean(0)
    assert torch.allclose(toy.trained.running_mean, expected, atol=1e-6)
    assert toy.trained.momentum == 0.03
    assert torch.equal(toy.frozen.running_mean, frozen_before)


@pytest.mark.parametrize("model", ["ssdlite320_mobilenet_v2", "fasterrcnn_mobilenet_v3_large_fpn"])
def test_channels_last_trains_like_nchw(tmp_path: Path, model: str) -> None:
    """channels_last (the CPU default) changes the memory layout, not the training."""
    ds = make_detect_dataset(tmp_path / "ds")
    first, epoch = {}, {}
    for layout in ("on", "off"):
        train(ds, tmp_path / layout, cfg(f"model={model}", f"channels_last='{layout}'"))
        steps = read_metrics(tmp_path / layout, kind="step")
        first[layout] = steps[0]["loss"]  # same weights, same batch: same loss
        epoch[layout] = read_metrics(tmp_path / layout)[0]["train.loss"]
    assert math.isfinite(first["on"]) and math.isfinite(epoch["on"])
    assert first["on"] == pytest.approx(first["off"], rel=1e-4)
    assert epoch["on"] == pytest.approx(epoch["off"], rel=0.02)  # later steps drift apart a little
