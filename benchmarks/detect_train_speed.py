"""Detector training speed: cvpipe's trainer vs a plain loop in the style of torchvision's
detection reference (``references/detection/train.py`` + ``engine.train_one_epoch``).

Both train the same detector (same builder, same seed, so the same initial weights) on
the same synthetic detection set (coloured shapes on textured backgrounds, JPEG, about a
quarter of the images without boxes), with the same batch size, data-loader workers,
optimizer (SGD, momentum 0.9) and number of epochs/steps, horizontal flips as the only
augmentation, on the same device:

- **cvpipe**: :func:`cvpipe.engine.trainer.train` with its defaults (health collector on,
  metrics.jsonl rows, progress, atomic checkpoints each epoch, validation each epoch,
  ``channels_last: auto``, which is on for CPU too; the reference has no such option and
  runs NCHW);
  its img/s is the training-loop figure it writes per epoch (validation excluded);
- **plain**: the reference's loop — a map-style dataset decoding with PIL, ``PILToTensor``
  + ``ToDtype`` + ``RandomHorizontalFlip`` (transforms.v2 with ``tv_tensors``), a
  ``DataLoader`` with ``collate_fn=tuple(zip(*batch))``, ``loss_dict = model(images,
  targets)``, ``sum`` of the losses, ``isfinite`` check, backward, step; no validation.

Each trainer runs in its own fresh process, twice, in the order A B B A so slow drift of
the machine hits both equally; img/s is the median over the epochs after the first
(warm-up) of both runs. The RESULT line gives both figures and the ratio cvpipe / plain
(≥ 1.0 means cvpipe trains at least as fast).

    python benchmarks/detect_train_speed.py            # 192 images, 4 epochs, 160 px
    python benchmarks/detect_train_speed.py --quick    # 64 images, 3 epochs
    python benchmarks/detect_train_speed.py --device cuda --model ssdlite320_mobilenet_v2_fpnlite
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import parser, report, run_isolated
from PIL import Image, ImageDraw

CLASSES = ["burger", "drink", "fries"]
COLOURS = [(200, 120, 40), (40, 90, 220), (240, 200, 40)]


def make_dataset(root: Path, n: int, size: int) -> None:
    """``n`` JPEGs of ``size`` px with 0-3 shapes each, split 80/20 train/val."""
    from cvpipe.data.manifest import Dataset, DatasetInfo, Record

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        base = rng.integers(60, 200, 3)
        arr = np.clip(base + rng.normal(0, 18, (size, size, 3)), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr)
        draw = ImageDraw.Draw(im)
        boxes, labels = [], []
        for _ in range(0 if i % 4 == 3 else int(rng.integers(1, 4))):
            w, h = (int(v) for v in rng.integers(size // 6, size // 2, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            c = int(rng.integers(0, len(CLASSES)))
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=COLOURS[c])
            boxes.append([float(x), float(y), float(x + w), float(y + h)])
            labels.append(c)
        rel = f"images/{i:05d}.jpg"
        im.save(root / rel, quality=90)
        split = "train" if i < int(n * 0.8) else "val"
        records.append(
            Record(
                id=f"im{i:05d}",
                file=rel,
                width=size,
                height=size,
                split=split,
                boxes=boxes,
                labels=labels,
            )
        )
    Dataset(root, DatasetInfo(name="bench", task="detect", classes=CLASSES), records).save()


def cvpipe_train(dataset: str, out: str, opts: dict[str, Any]) -> list[float]:
    """cvpipe's trainer with its defaults; img/s of each epoch's training loop."""
    import torch

    from cvpipe.config import load_config
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train

    torch.set_num_threads(opts["threads"])
    config = load_config(
        TrainConfig,
        values={
            "model": opts["model"], "weights": "none", "input_size": opts["size"], "epochs": opts["epochs"],
            "batch_size": opts["batch"], "workers": opts["workers"], "device": opts["device"],
            "optimizer.name": "sgd", "optimizer.lr": 0.01, "optimizer.momentum": 0.9, "seed": 0,
        },
    )  # fmt: skip
    result = train(dataset, out, config)
    return [float(r["img_per_s"]) for r in result.history]


class PlainDataset:
    """The reference's dataset: PIL decode, target dict with model labels (dataset + 1)."""

    def __init__(self, root: str, records: list[dict[str, Any]]) -> None:
        from torchvision.transforms import v2 as T

        self.root, self.records = Path(root), records
        self.transforms = T.Compose(
            [
                T.PILToTensor(),
                T.ToDtype(__import__("torch").float, scale=True),
                T.RandomHorizontalFlip(0.5),
            ]
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Any:
        import torch
        from torchvision import tv_tensors

        rec = self.records[i]
        img = Image.open(self.root / rec["file"]).convert("RGB")
        boxes = torch.as_tensor(rec["boxes"], dtype=torch.float32).reshape(-1, 4)
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                boxes, format="XYXY", canvas_size=(img.height, img.width)
            ),
            "labels": torch.as_tensor(rec["labels"], dtype=torch.int64) + 1,
        }
        return self.transforms(img, target)


def collate_fn(batch: list[Any]) -> tuple[Any, ...]:
    return tuple(zip(*batch, strict=True))


def plain_train(dataset: str, opts: dict[str, Any]) -> list[float]:
    """references/detection/train.py's loop on the same model, data, batch and steps."""
    import json

    import torch

    from cvpipe.models.detection import create_detector

    torch.set_num_threads(opts["threads"])
    device = torch.device("cuda" if opts["device"] == "cuda" else "cpu")
    records = [
        json.loads(line)
        for line in (Path(dataset) / "manifest.jsonl").read_text().splitlines()
        if line.strip()
    ]
    train_records = [r for r in records if r["split"] == "train"]
    torch.manual_seed(0)  # as cvpipe seeds before building: identical initial weights
    model = create_detector(
        opts["model"], num_classes=len(CLASSES), input_size=opts["size"]
    ).model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(
        PlainDataset(dataset, train_records), batch_size=opts["batch"], shuffle=True,
        num_workers=opts["workers"], collate_fn=collate_fn, persistent_workers=opts["workers"] > 0,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    speeds = []
    for _ in range(opts["epochs"]):
        model.train()
        seen, t0 = 0, time.perf_counter()
        for images, targets in loader:
            images = [image.to(device) for image in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            loss_dict = model(images, targets)
            losses = sum(loss for loss in loss_dict.values())
            loss_value = float(losses.item())
            if not math.isfinite(loss_value):
                raise RuntimeError(f"Loss is {loss_value}, stopping training")
            optimizer.zero_grad()
            losses.backward()
            optimizer.step()
            seen += len(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        speeds.append(seen / (time.perf_counter() - t0))
    return speeds


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="ssdlite320_mobilenet_v2")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads per process (0 = torch's default)"
    )
    args = p.parse_args()
    import torch

    n, epochs = (64, 3) if args.quick else (192, 4)
    size = 160
    opts = {
        "model": args.model, "size": size, "epochs": epochs, "batch": args.batch, "workers": args.workers,
        "device": args.device, "threads": args.threads or torch.get_num_threads(),
    }  # fmt: skip
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-dettrain-"))
    try:
        make_dataset(work / "ds", n, size)
        runs: dict[str, list[list[float]]] = {"cvpipe": [], "plain": []}
        for i, who in enumerate(["cvpipe", "plain", "plain", "cvpipe"]):
            if who == "cvpipe":
                _, _, speeds = run_isolated(
                    cvpipe_train, str(work / "ds"), str(work / f"run{i}"), opts
                )
            else:
                _, _, speeds = run_isolated(plain_train, str(work / "ds"), opts)
            runs[who].append(speeds)
            print(f"{who:7s} img/s per epoch: {' '.join(f'{s:.1f}' for s in speeds)}", flush=True)
        med = {k: statistics.median(s for run in v for s in run[1:]) for k, v in runs.items()}
        figures = {
            "cvpipe_img_per_s": round(med["cvpipe"], 2),
            "plain_img_per_s": round(med["plain"], 2),
            "ratio": round(med["cvpipe"] / med["plain"], 3),
        }
        details = {**opts, "images": n, "train_images": int(n * 0.8), "per_epoch": runs}
        report("detect_train_speed", figures, details)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
