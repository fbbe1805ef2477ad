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

**Real photos** (``--data``: a cvpipe detect dataset with train/val splits, or a Pascal VOC
folder with ``annotations/`` and ``images/`` — e.g. ../shared/devdata/raccoon —, imported
and split 70/15/15 with ``--seed``) compare cvpipe's own paths, all ImageNet backbone,
the same optimizer, seed and horizontal flips, each in a fresh process with an empty
``$CVPIPE_HOME`` of its own:

- **today**: the trunk frozen with ``freeze_pattern`` (what existed before), decoding
  and running the frozen trunk every step;
- **cached**: ``freeze: frozen``: the trunk's maps computed once per image and flip
  (:mod:`cvpipe.engine.detect_cache`), neck and head trained from the cache; its time
  includes the feature pass; then once more on the warm cache (**cached_hit**);
- **full** / **packed** (speed only, ``--pack-epochs``): the whole detector fine-tuned
  decoding every epoch, against reading from a pack at the input size (the automatic
  pack of large photos, forced here whatever the photo sizes; its build time is given).

It reports training-loop img/s (median over epochs after the first), the best val mAP@.5
of each arm, the wall time (from ``train()`` start, feature pass included) at which each
arm first reaches the lower of today's and cached's best val mAP@.5, and the size of the
feature cache.

    python benchmarks/detect_train_speed.py            # 192 images, 4 epochs, 160 px
    python benchmarks/detect_train_speed.py --quick    # 64 images, 3 epochs
    python benchmarks/detect_train_speed.py --device cuda --model ssdlite320_mobilenet_v2_fpnlite
    python benchmarks/detect_train_speed.py --data ../shared/devdata/raccoon --epochs 12
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


# ------------------------------------------------------------------ real photos
def prepare_real(data: Path, work: Path, seed: int) -> Path:
    """A cvpipe dataset with train/val splits: ``data`` itself, or a VOC folder imported
    into ``work/ds`` and split 70/15/15."""
    import subprocess
    import sys

    if (data / "manifest.jsonl").is_file():
        return data
    out = work / "ds"
    if not (out / "manifest.jsonl").is_file():
        cli = [sys.executable, "-m", "cvpipe.cli.main"]
        subprocess.run(
            [*cli, "import", "voc", str(data / "annotations"), "--images", str(data / "images"),
             "--out", str(out), "-q", "--no-progress"],
            check=True,
        )  # fmt: skip
        subprocess.run(
            [*cli, "split", str(out), "--ratios", "70/15/15", "--seed", str(seed), "-q", "--no-progress"],
            check=True,
        )  # fmt: skip
    return out


def real_train(
    dataset: str, out: str, home: str, opts: dict[str, Any], extra: dict[str, Any]
) -> Any:
    """One cvpipe run on real photos; per epoch: img/s, val mAP@.5, wall s since start."""
    import os

    import torch

    os.environ["CVPIPE_HOME"] = home
    torch.set_num_threads(opts["threads"])
    from cvpipe.config import load_config
    from cvpipe.engine.callbacks import Callback
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train

    t0 = time.perf_counter()
    marks: list[float] = []

    class Clock(Callback):
        def on_epoch_end(self, state: Any, row: dict[str, Any]) -> None:
            marks.append(time.perf_counter() - t0)

    values = {
        "model": opts["model"], "weights": "imagenet", "input_size": opts["size"],
        "epochs": opts["epochs"], "batch_size": opts["batch"], "workers": opts["workers"],
        "device": opts["device"], "optimizer.name": "adam", "optimizer.lr": 0.002,
        "optimizer.weight_decay": 0.00004, "scheduler.name": "cosine", "scheduler.warmup_epochs": 1,
        "detector.classification_weight": 0.5, "detector.augment.hflip": True,
        "detector.auto_pack": False, "health.enabled": False, "seed": 0,
        "detector.precise_bn": opts["precise_bn"], **extra,
    }  # fmt: skip
    result = train(dataset, out, load_config(TrainConfig, values=values), callbacks=[Clock()])
    rows = result.history
    return {
        "img_per_s": [float(r["img_per_s"]) for r in rows],
        "map50": [float(r["val.mAP50"]) for r in rows],
        "map": [float(r["val.mAP"]) for r in rows],
        "wall_s": marks,
        "total_s": time.perf_counter() - t0,
        "feature_cache": result.feature_cache,
    }


def _time_to(run: dict[str, Any], target: float) -> float | None:
    for m, t in zip(run["map50"], run["wall_s"], strict=True):
        if m >= target - 1e-9:
            return round(t, 1)
    return None


def real_main(args: Any, work: Path) -> None:
    import torch

    from cvpipe.data.manifest import Dataset
    from cvpipe.data.pack import auto_pack

    ds_dir = prepare_real(Path(args.data), work, args.seed)
    opts = {
        "model": args.model, "size": args.size, "epochs": args.epochs, "batch": args.batch,
        "workers": args.workers, "device": args.device,
        "threads": args.threads or torch.get_num_threads(), "precise_bn": args.precise_bn,
        "parallel": args.parallel,
    }  # fmt: skip
    trunk = {
        "ssdlite320_mobilenet_v2": r"^model\.backbone\.features\.",
        "ssdlite320_mobilenet_v2_fpnlite": r"^model\.backbone\.body\.",
        "ssd512_resnet50": r"^model\.backbone\.body\.",
    }[args.model]
    runs: dict[str, Any] = {}

    def arm(name: str, extra: dict[str, Any], home: str, **over: Any) -> None:
        o = {**opts, **over}
        try:
            _, _, runs[name] = run_isolated(
                real_train, str(ds_dir), str(work / name), home, o, extra
            )
        except RuntimeError as exc:  # e.g. killed for memory on a shared machine: keep the rest
            print(f"{name:10s} failed: {exc}", flush=True)
            return
        r = runs[name]
        print(
            f"{name:10s} img/s {' '.join(f'{v:.1f}' for v in r['img_per_s'])}  "
            f"mAP50 {' '.join(f'{v:.3f}' for v in r['map50'])}  total {r['total_s']:.0f} s",
            flush=True,
        )

    home = str(work / "home")
    full = {"detector.auto_pack": False}
    figures: dict[str, Any] = {}
    jobs: list[Any] = [
        lambda: (
            arm("cached", {"freeze": "frozen"}, home),
            arm("cached_hit", {"freeze": "frozen"}, home),
        ),
        lambda: arm("today", {"freeze_pattern": trunk}, str(work / "home_today")),
    ]
    if args.pack_epochs:
        recs = [r for r in Dataset.load(ds_dir).records if r.split in ("train", "val")]
        t0 = time.perf_counter()
        reader, _ = auto_pack(Dataset.load(ds_dir), recs, args.size, work / "packs")
        figures["pack_build_s"] = round(time.perf_counter() - t0, 1)
        jobs += [
            lambda: arm("full", full, str(work / "home_full"), epochs=args.pack_epochs),
            lambda: arm("packed", {**full, "pack": str(reader.root)}, str(work / "home_packed"), epochs=args.pack_epochs),
        ]  # fmt: skip
    if args.parallel:  # every arm at once: the same (loaded) machine for all of them
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(jobs)) as pool:
            for f in [pool.submit(j) for j in jobs]:
                f.result()
    else:
        for j in jobs:
            j()
    med = {k: statistics.median(v["img_per_s"][1:] or v["img_per_s"]) for k, v in runs.items()}
    best = {k: max(v["map50"]) for k, v in runs.items()}
    if {"today", "cached", "cached_hit"} <= set(runs):
        target = min(best["today"], best["cached"])
        figures.update(
            today_img_per_s=round(med["today"], 1), cached_img_per_s=round(med["cached"], 1),
            cache_speedup=round(med["cached"] / med["today"], 2),
            today_best_map50=round(best["today"], 3), cached_best_map50=round(best["cached"], 3),
            target_map50=round(target, 3), today_s_to_target=_time_to(runs["today"], target),
            cached_s_to_target=_time_to(runs["cached"], target),
            cached_hit_s_to_target=_time_to(runs["cached_hit"], target),
        )  # fmt: skip
    feats = work / "home" / "features"
    cache_mb = sum(f.stat().st_size for f in feats.rglob("*.npy")) / 2**20 if feats.is_dir() else 0
    figures["cache_mib"] = round(cache_mb, 1)
    if args.pack_epochs and "full" in runs and "packed" in runs:
        mf = statistics.median(runs["full"]["img_per_s"][1:] or runs["full"]["img_per_s"])
        mp_ = statistics.median(runs["packed"]["img_per_s"][1:] or runs["packed"]["img_per_s"])
        figures.update(
            full_img_per_s=round(mf, 1),
            packed_img_per_s=round(mp_, 1),
            pack_speedup=round(mp_ / mf, 2),
        )
    details = {**opts, "data": str(args.data), "dataset": str(ds_dir), "runs": runs,
               "images": {s: sum(1 for r in Dataset.load(ds_dir).records if r.split == s) for s in ("train", "val", "test")}}  # fmt: skip
    report("detect_train_speed_real", figures, details)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="ssdlite320_mobilenet_v2")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads per process (0 = torch's default)"
    )
    p.add_argument(
        "--data", default=None, help="real photos: a cvpipe detect dataset or a VOC folder"
    )
    p.add_argument("--size", type=int, default=320, help="input size with --data")
    p.add_argument("--epochs", type=int, default=12, help="epochs per arm with --data")
    p.add_argument(
        "--pack-epochs", type=int, default=3, help="epochs of the full/packed arms (0 = skip)"
    )
    p.add_argument("--seed", type=int, default=0, help="split seed with --data")
    p.add_argument("--precise-bn", type=int, default=16, help="detector.precise_bn with --data")
    p.add_argument(
        "--parallel", action="store_true", help="with --data: run the arms at the same time"
    )
    args = p.parse_args()
    import torch

    if args.data:
        if args.quick:
            args.epochs, args.pack_epochs = 2, min(args.pack_epochs, 1)
        work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-dettrain-real-"))
        try:
            real_main(args, work)
        finally:
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)
        return

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
