"""Cached detector training (frozen trunk) and automatic packs for large photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.engine.tinydetect import make_detect_dataset

from cvpipe.config import load_config
from cvpipe.data.datasets import EpochSampler
from cvpipe.data.detection_datasets import DetectionDataset, collate_detection
from cvpipe.data.detection_transforms import detection_eval_transform
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.data.pack import needs_pack
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.detect_cache import (
    CachedDetector,
    MapBatch,
    MapLoader,
    _input_boxes,
    flip_boxes,
    trunk_source,
)
from cvpipe.engine.detection import check_ground_truth
from cvpipe.engine.features import FeatureRequest, cached_features
from cvpipe.engine.runs import ModelCard
from cvpipe.engine.trainer import train
from cvpipe.models.detection import create_detector
from cvpipe.models.detector import freeze_backbone

SIZE = 64


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVPIPE_HOME", str(tmp_path / "home"))


def _frozen(name: str = "ssdlite320_mobilenet_v2") -> torch.nn.Module:
    torch.manual_seed(0)
    det = create_detector(name, num_classes=2, input_size=SIZE)
    freeze_backbone(det, det.trunk_pattern())
    det.train()
    return det


def _uncached_batch(ds: Dataset, det: torch.nn.Module) -> tuple[list, list]:
    recs = ds.split_records("train")
    tg = check_ground_truth(ds, recs, 2, "train")
    data = DetectionDataset(ds, recs, tg, detection_eval_transform(), draft=SIZE)
    images, targets, _ = collate_detection([data[i] for i in range(len(recs))])
    return images, targets


def _cached(ds: Dataset, det: torch.nn.Module, tmp: Path, variants=("base",), dtype="float32"):
    recs = ds.split_records("train")
    req = FeatureRequest(variants=variants, dtype=dtype, cache_dir=tmp / "fc", backend="torch")
    fs = cached_features(trunk_source(det), ds, recs, req)
    tg = check_ground_truth(ds, recs, 2, "train")
    boxes = _input_boxes(recs, tg.boxes, SIZE)
    labels = [torch.from_numpy(np.asarray(v, dtype=np.int64)) for v in tg.labels]
    return fs, boxes, labels


def _loader(fs, boxes, labels, variants, variant) -> MapLoader:
    n = len(boxes)
    sampler = EpochSampler(n, shuffle=False, pad=False)
    return MapLoader(fs.maps, boxes, labels, range(n), sampler, n, SIZE, variants, variant)


@pytest.mark.parametrize("name", ["ssdlite320_mobilenet_v2", "ssdlite320_mobilenet_v2_fpnlite"])
def test_cached_first_step_loss_equals_uncached(tmp_path: Path, name: str) -> None:
    ds = make_detect_dataset(tmp_path / "ds", splits={"train": 6, "val": 2})
    det = _frozen(name)
    images, targets = _uncached_batch(ds, det)
    want = det(images, targets)
    fs, boxes, labels = _cached(ds, det, tmp_path)
    batch, tgts, _ = next(iter(_loader(fs, boxes, labels, ("base",), 0)))
    got = CachedDetector(det).train()(batch, tgts)
    assert set(got) == set(want) == {"bbox_regression", "classification"}
    for k in want:
        assert float(got[k].detach()) == pytest.approx(float(want[k].detach()), rel=1e-4, abs=1e-5)
    # gradients reach the neck and head only, exactly as through the whole detector
    sum(got.values()).backward()
    trunk = [p for n, p in det.named_parameters() if n.startswith("model.backbone.")]
    assert all(p.grad is None for p in trunk if not p.requires_grad)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in det.model.head.parameters())


def test_fp16_cache_is_close_and_sized_per_map(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", splits={"train": 6, "val": 2})
    det = _frozen()
    want = det(*_uncached_batch(ds, det))
    fs, boxes, labels = _cached(ds, det, tmp_path, dtype="float16")
    # MobileNetV2: C4 expansion (576 ch, S/16) and C5 (1280 ch, S/32), one array each
    assert [m.shape for m in fs.maps] == [(1, 6, 576, 4, 4), (1, 6, 1280, 2, 2)]
    assert all(m.dtype == np.float16 and isinstance(m, np.memmap) for m in fs.maps)
    meta = json.loads((fs.path / "meta.json").read_text())
    assert meta["shapes"] == [[576, 4, 4], [1280, 2, 2]] and meta["dtype"] == "float16"
    batch, tgts, _ = next(iter(_loader(fs, boxes, labels, ("base",), 0)))
    got = CachedDetector(det).train()(batch, tgts)
    assert float(sum(got.values()).detach()) == pytest.approx(
        float(sum(want.values()).detach()), rel=2e-2
    )


def test_flip_variant_matches_flipped_images_and_boxes(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", splits={"train": 6, "val": 2})
    det = _frozen()
    images, targets = _uncached_batch(ds, det)
    flipped_targets = []
    for img, t in zip(images, targets, strict=True):
        flipped_targets.append(
            {"boxes": flip_boxes(t["boxes"], img.shape[-1]), "labels": t["labels"]}
        )
    want = det([torch.flip(x, dims=[2]) for x in images], flipped_targets)
    fs, boxes, labels = _cached(ds, det, tmp_path, variants=("base", "hflip"))
    batch, tgts, _ = next(iter(_loader(fs, boxes, labels, ("base", "hflip"), 1)))
    for t, b in zip(tgts, boxes, strict=True):  # boxes mirrored in input pixels
        if b.numel():
            assert torch.allclose(t["boxes"][:, 0], SIZE - b[:, 2])
            assert torch.allclose(t["boxes"][:, 2], SIZE - b[:, 0])
            assert torch.equal(t["boxes"][:, [1, 3]], b[:, [1, 3]])
    got = CachedDetector(det).train()(batch, tgts)
    for k in want:
        assert float(got[k].detach()) == pytest.approx(float(want[k].detach()), rel=1e-4, abs=1e-5)
    # the random per-epoch choice uses both variants
    sampler = EpochSampler(len(boxes), seed=0)
    loader = MapLoader(
        fs.maps, boxes, labels, range(len(boxes)), sampler, 2, SIZE, ("base", "hflip")
    )
    assert len(loader) == 3 and sum(len(b[1]) for b in loader) == len(boxes)


def test_eval_detections_in_input_pixels(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", splits={"train": 6, "val": 2})
    det = _frozen()
    fs, boxes, labels = _cached(ds, det, tmp_path)
    model = CachedDetector(det).eval()
    batch, _, _ = next(iter(_loader(fs, boxes, labels, ("base",), 0)))
    det.set_postprocess(score_thresh=0.0)
    with torch.no_grad():
        out = model(batch)
        images, _ = _uncached_batch(ds, det)
        want = det.eval()(images)
    assert len(out) == 6 and len(MapBatch(batch.maps)) == 6
    for got, ref, img in zip(out, want, images, strict=True):  # same detections, per-axis scaled
        scale = torch.tensor([SIZE / img.shape[-1], SIZE / img.shape[-2]] * 2)
        assert len(got["boxes"]) == len(ref["boxes"]) > 0
        assert torch.allclose(got["boxes"], ref["boxes"] * scale, atol=1e-3)
        assert torch.allclose(got["scores"], ref["scores"], atol=1e-5)


def _cfg(*extra: str) -> TrainConfig:
    base = [
        "model=ssdlite320_mobilenet_v2", "weights=none", f"input_size={SIZE}", "epochs=2",
        "batch_size=4", "workers=0", "device=cpu", "health.enabled=false", "detector.precise_bn=0",
    ]  # fmt: skip
    return load_config(TrainConfig, overrides=[*base, *extra])


def test_training_from_cache_hits_on_the_second_run(tmp_path: Path) -> None:
    ds = make_detect_dataset(tmp_path / "ds", splits={"train": 8, "val": 4})
    first = train(ds.root, tmp_path / "a", _cfg("freeze=frozen"))
    second = train(ds.root, tmp_path / "b", _cfg("freeze=frozen"))
    assert (first.feature_cache, second.feature_cache) == ("miss", "hit")
    assert [r["train.loss"] for r in first.history] == [r["train.loss"] for r in second.history]
    assert np.isfinite(first.history[-1]["val.mAP"])
    entries = [p for p in (tmp_path / "home" / "features").iterdir() if p.name != "onnx"]
    assert len(entries) == 2 and not any(p.name.endswith(".tmp") for p in entries)  # train, val
    # the trunk stayed as built; the checkpoint is a whole detector
    card = ModelCard.load(tmp_path / "b" / "model_card.json")
    assert card.extra["frozen_parameters"] > 0 and card.extra["feature_cache"] == "hit"
    off = train(ds.root, tmp_path / "c", _cfg("freeze=frozen", "feature_cache=off"))
    assert off.feature_cache is None


def test_uncacheable_augmentation_is_left_out_and_logged(tmp_path: Path, caplog) -> None:
    ds = make_detect_dataset(tmp_path / "ds", splits={"train": 4, "val": 2})
    with caplog.at_level("WARNING", logger="cvpipe.engine.detect_cache"):
        train(
            ds.root,
            tmp_path / "a",
            _cfg("freeze=frozen", "epochs=1", "detector.augment.photometric=true"),
        )
    assert "photometric" in caplog.text and "cannot be cached" in caplog.text


def _large_dataset(root: Path, side: int, n: int = 6) -> Dataset:
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        arr = np.clip(rng.normal(128, 20, (side, side + 20, 3)), 0, 255).astype(np.uint8)
        x = int(rng.integers(0, side // 2))
        arr[x : x + side // 3, x : x + side // 3] = (230, 40, 40)
        f = f"images/{i:02d}.jpg"
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / f, quality=90)
        box = [float(x), float(x), float(x + side // 3), float(x + side // 3)]
        recs.append(
            Record(id=f"r{i}", file=f, width=side + 20, height=side,
                   split="train" if i < n - 2 else "val", boxes=[box], labels=[0])
        )  # fmt: skip
    Dataset(root, DatasetInfo(name=root.name, task="detect", classes=["plane", "car"]), recs).save()
    return Dataset.load(root)


def test_auto_pack_on_large_photos_only(tmp_path: Path) -> None:
    big = _large_dataset(tmp_path / "big", 200)
    small = _large_dataset(tmp_path / "small", 70)
    assert needs_pack(big.records, SIZE) == 200 and needs_pack(small.records, SIZE) is None
    train(big.root, tmp_path / "a", _cfg())
    train(big.root, tmp_path / "b", _cfg())
    train(small.root, tmp_path / "c", _cfg())
    status = [ModelCard.load(tmp_path / r / "model_card.json").extra["auto_pack"] for r in "abc"]
    assert status == ["miss", "hit", None]
    packs = [p for p in (tmp_path / "home" / "packs").iterdir()]
    assert len(packs) == 1 and (packs[0] / "index.json").is_file()
    index = json.loads((packs[0] / "index.json").read_text())
    assert index["size"] == SIZE and len(index["records"]) == 6
    # boxes follow the packed pixels: the loader rescales them to the stored size
    from cvpipe.data.pack import PackReader

    reader = PackReader.open(packs[0])
    recs = big.split_records("train")
    tg = check_ground_truth(big, recs, 2, "train")
    img, t = DetectionDataset(big, recs, tg, detection_eval_transform(), pack=reader)[0]
    assert img.shape[1] == SIZE  # shorter side (height) packed at the input size
    scale = torch.tensor([img.shape[2] / recs[0].width, img.shape[1] / recs[0].height] * 2)
    assert torch.allclose(t["boxes"], torch.as_tensor(recs[0].boxes) * scale, atol=1e-4)
    # no pack when asked not to, nor with the trunk-map cache (it decodes once anyway)
    train(big.root, tmp_path / "d", _cfg("detector.auto_pack=false"))
    train(big.root, tmp_path / "e", _cfg("freeze=frozen"))
    assert [ModelCard.load(tmp_path / r / "model_card.json").extra["auto_pack"] for r in "de"] == [
        None,
        None,
    ]
