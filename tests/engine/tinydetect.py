"""A tiny detection dataset and fabricated detect runs (until real training is used)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.engine.checkpoint import save_checkpoint
from cvpipe.engine.runs import ModelCard
from cvpipe.models.detection import create_detector
from cvpipe.models.preprocess import Preprocess

CLASSES = ["plane", "car"]
COLOURS = [(230, 40, 40), (40, 60, 230)]


def make_detect_dataset(
    root: Path,
    *,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (80, 64),
    seed: int = 0,
    empty_every: int = 4,
) -> Dataset:
    """Images with 0-3 coloured rectangles (class by colour); every ``empty_every``-th
    image has no box. ``splits``: images per split (default train 6, val 4, test 6)."""
    rng = np.random.default_rng(seed)
    splits = splits or {"train": 6, "val": 4, "test": 6}
    w, h = size
    recs = []
    k = 0
    for split, n in splits.items():
        for _ in range(n):
            arr = np.clip(rng.normal(128, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            im = Image.fromarray(arr)
            draw = ImageDraw.Draw(im)
            boxes, labels = [], []
            n_obj = 0 if k % empty_every == empty_every - 1 else int(rng.integers(1, 4))
            for _ in range(n_obj):
                bw, bh = int(rng.integers(12, 30)), int(rng.integers(12, 30))
                x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                c = int(rng.integers(0, len(CLASSES)))
                draw.rectangle([x1, y1, x1 + bw - 1, y1 + bh - 1], fill=COLOURS[c])
                boxes.append([float(x1), float(y1), float(x1 + bw), float(y1 + bh)])
                labels.append(c)
            f = f"images/{split}_{k:03d}.jpg"
            (root / f).parent.mkdir(parents=True, exist_ok=True)
            im.save(root / f, quality=95)
            recs.append(
                Record(
                    id=f"{split}_{k:03d}", file=f, width=w, height=h, split=split,
                    boxes=boxes, labels=labels,
                )
            )  # fmt: skip
            k += 1
    info = DatasetInfo(name=root.name, task="detect", classes=list(CLASSES))
    Dataset(root, info, recs).save()
    return Dataset.load(root)


def make_detect_run(
    run: Path,
    ds: Dataset,
    *,
    model: str = "ssdlite320_mobilenet_v2",
    input_size: int = 64,
    seed: int = 0,
    thresholds: dict[str, Any] | None = None,
) -> Path:
    """A detect run per the issue-4 contract: random detector weights, card, lock, metrics."""
    torch.manual_seed(seed)
    det = create_detector(model, num_classes=len(ds.classes), weights=None, input_size=input_size)
    card_det = det.card()
    card = ModelCard(
        task="detect",
        classes=list(ds.classes),
        model=model,
        head={},
        preprocess=Preprocess(
            input_size=input_size,
            resize_size=input_size,
            mean=tuple(card_det["image_mean"]),
            std=tuple(card_det["image_std"]),
        ),
        input_size=input_size,
        metrics={"val.mAP": 0.0},
        extra={
            "thresholds": thresholds or {"score": 0.01, "nms_iou": 0.45, "detections_per_img": 100},
            "detector": {"classification_weight": 1.0, "localization_weight": 1.0},
        },
    )
    card.save(run / "model_card.json")
    meta = {"task": "detect", "classes": list(ds.classes), "model": model}
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": det.state_dict(), "epoch": 1}, meta)
    lock = {"dataset": str(ds.root.resolve()), "manifest_sha256": ds.manifest_hash(), "splits": {}}
    (run / "dataset.lock").write_text(json.dumps(lock))
    rows = [
        {"kind": "epoch", "epoch": e, "train.loss": 3 / e + seed, "val.loss": 3.2 / e,
         "val.mAP": 0.1 * e}
        for e in (1, 2)
    ]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run
