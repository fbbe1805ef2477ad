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
and split 70/15/15 once per ``--seeds`` seed) compare cvpipe's own paths with the same
settings — the built-in ones (ImageNet backbone, Adam) or a recipe's (``--recipe``, e.g. the
default ``recipes/detect_coco_ssd_mnv2.yaml``: COCO start, momentum SGD) —, horizontal flips
as the only augmentation (the others change the trunk's input and cannot be cached), each
arm in a fresh process with a ``$CVPIPE_HOME`` of its own (with ``--weights coco`` the
COCO graph is converted once and shared):

- **today**: the trunk frozen with ``freeze_pattern`` (what existed before), decoding
  and running the frozen trunk every step;
- **cached**: ``freeze: frozen``: the trunk's maps computed once per image and flip
  (:mod:`cvpipe.engine.detect_cache`), neck and head trained from the cache; its time
  includes the feature pass; for the first seed once more on the warm cache (**cached_hit**);
- **probe_today / probe_cached / probe_cached_fp32** (``--probe-steps``): both paths on the
  same first batch (same sampler seed), flips off, stopped after the first step: the loss
  before any update must agree, up to the fp16 (or fp32) storage of the maps; a gap here
  would be a real difference of the paths (resize, normalisation, boxes), not noise;
- **full** / **packed** (speed only, ``--pack-epochs``, first seed; ``--pack-only`` runs
  just these): training without a trunk cache — the whole detector, or with ``--recipe``
  the recipe's own trainable layers — decoding every epoch, against reading from a pack at
  the input size (the automatic pack of large photos, forced here whatever the photo
  sizes; its build time is given).

Per seed, each split seed is also the training seed of both arms (same initial head, same
batches); the RESULT line gives the mean and standard deviation over seeds of the best val
mAP@.5 of each arm and of the paired difference cached − today (30 val photos per split on
raccoon: one box is about 0.03), how many seeds cached is not worse, the img/s of the first
seed (median over epochs after the first) and the slowest seed's speed-up, and the wall time
(feature pass included) to the lower of the two best val mAP@.5 of the first seed. With a
cvpipe dataset as ``--data`` the split is the dataset's own and only the training seed varies.
Finished arms are written to ``WORKDIR/runs.json`` as they end.

    python benchmarks/detect_train_speed.py            # 192 images, 4 epochs, 160 px
    python benchmarks/detect_train_speed.py --quick    # 64 images, 3 epochs
    python benchmarks/detect_train_speed.py --device cuda --model ssdlite320_mobilenet_v2_fpnlite
    python benchmarks/detect_train_speed.py --data ../shared/devdata/raccoon --epochs 12
    python benchmarks/detect_train_speed.py --data ../shared/devdata/raccoon \
        --recipe recipes/detect_coco_ssd_mnv2.yaml --epochs 6 --seeds 0,1,2,3 --parallel
"""

from __future__ import annotations

import json
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


class _ProbeDone(Exception):
    """Raised by the probe's callback once its steps are recorded (ends the run early)."""


def real_values(opts: dict[str, Any]) -> dict[str, Any]:
    """Settings shared by every arm: a recipe's (``--recipe``) or the built-in ones."""
    values: dict[str, Any] = {
        "weights": opts["weights"], "input_size": opts["size"], "epochs": opts["epochs"],
        "batch_size": opts["batch"], "workers": opts["workers"], "device": opts["device"],
        # flips only: the other augmentations change the trunk's input and cannot be cached
        "detector.augment.hflip": True, "detector.augment.iou_crop": False,
        "detector.augment.photometric": False, "detector.augment.zoom_out": 1.0,
        "detector.auto_pack": False, "health.enabled": False, "seed": opts["train_seed"],
    }  # fmt: skip
    if opts.get("model"):
        values["model"] = opts["model"]
    if not opts.get("recipe"):
        values.update({
            "optimizer.name": "adam", "optimizer.lr": 0.002, "optimizer.weight_decay": 0.00004,
            "scheduler.name": "cosine", "scheduler.warmup_epochs": 1,
            "detector.classification_weight": 0.5,
        })  # fmt: skip
    if opts.get("precise_bn") is not None or not opts.get("recipe"):
        values["detector.precise_bn"] = 16 if opts.get("precise_bn") is None else opts["precise_bn"]
    return values


def real_train(
    dataset: str, out: str, home: str, opts: dict[str, Any], extra: dict[str, Any]
) -> Any:
    """One cvpipe run on real photos; per epoch: img/s, val mAP@.5, wall s since start;
    the loss of every optimizer step (taken before the step's update).

    ``opts["probe_steps"]``: stop after that many steps (first-step loss probe)."""
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
    losses: list[float] = []
    probe = int(opts.get("probe_steps") or 0)

    class Clock(Callback):
        def on_optimizer_step(self, state: Any, info: dict[str, Any]) -> None:
            losses.append(float(info["loss"]))
            if probe and len(losses) >= probe:
                raise _ProbeDone

        def on_epoch_end(self, state: Any, row: dict[str, Any]) -> None:
            marks.append(time.perf_counter() - t0)

    config = load_config(TrainConfig, opts.get("recipe"), values={**real_values(opts), **extra})
    try:
        result = train(dataset, out, config, callbacks=[Clock()])
    except _ProbeDone:
        return {"step_loss": losses, "total_s": time.perf_counter() - t0}
    rows = result.history
    return {
        "img_per_s": [float(r["img_per_s"]) for r in rows],
        "map50": [float(r["val.mAP50"]) for r in rows],
        "map": [float(r["val.mAP"]) for r in rows],
        "wall_s": marks,
        "total_s": time.perf_counter() - t0,
        "step_loss": losses,
        "feature_cache": result.feature_cache,
    }


def _time_to(run: dict[str, Any], target: float) -> float | None:
    for m, t in zip(run["map50"], run["wall_s"], strict=True):
        if m >= target - 1e-9:
            return round(t, 1)
    return None


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _coco_home(work: Path, opts: dict[str, Any]) -> Path | None:
    """Convert the COCO graph once (``--weights coco``) into ``work/coco_home/coco``, which
    every arm's own ``$CVPIPE_HOME`` links to (so no arm pays the conversion)."""
    if opts["weights"] != "coco":
        return None
    import os

    home = work / "coco_home"
    os.environ["CVPIPE_HOME"] = str(home)
    from cvpipe.models.coco_ssd import coco_state

    coco_state()
    return home / "coco"


def real_main(args: Any, work: Path) -> None:
    import torch

    from cvpipe.data.manifest import Dataset
    from cvpipe.data.pack import auto_pack

    seeds = [int(s) for s in str(args.seeds or args.seed).split(",")]
    model = args.model
    if args.recipe and model == "ssdlite320_mobilenet_v2" and "--model" not in _argv():
        model = None  # the recipe's model
    opts = {
        "model": model, "size": args.size, "epochs": args.epochs, "batch": args.batch,
        "workers": args.workers, "device": args.device, "weights": args.weights,
        "recipe": args.recipe, "threads": args.threads or torch.get_num_threads(),
        "precise_bn": args.precise_bn, "parallel": args.parallel, "train_seed": 0,
    }  # fmt: skip
    if args.recipe:
        from cvpipe.config import read_yaml

        rec = read_yaml(args.recipe)
        model = model or rec.get("model")
        if "--size" not in _argv():
            opts["size"] = int(rec.get("input_size", args.size))
        if "--weights" not in _argv():
            opts["weights"] = rec.get("weights", args.weights)
    trunk = {
        "ssdlite320_mobilenet_v2": r"^model\.backbone\.features\.",
        "ssd300_mobilenet_v2": r"^model\.backbone\.features\.",
        "ssdlite320_mobilenet_v2_fpnlite": r"^model\.backbone\.body\.",
        "ssd512_resnet50": r"^model\.backbone\.body\.",
    }[str(model)]
    coco = _coco_home(work, opts)
    runs: dict[str, Any] = {}

    def arm(name: str, ds_dir: Path, extra: dict[str, Any], **over: Any) -> None:
        home = work / f"home_{name}"
        home.mkdir(parents=True, exist_ok=True)
        if coco is not None and not (home / "coco").exists():
            (home / "coco").symlink_to(coco, target_is_directory=True)
        o = {**opts, **over}
        try:
            _, _, runs[name] = run_isolated(
                real_train, str(ds_dir), str(work / name), str(home), o, extra
            )
        except RuntimeError as exc:  # e.g. killed for memory on a shared machine: keep the rest
            print(f"{name:14s} failed: {exc}", flush=True)
            return
        r = runs[name]
        # every finished arm on disk at once: a long run that dies later keeps what it measured
        (work / "runs.json").write_text(json.dumps(runs, indent=1, default=str))
        if "map50" not in r:
            print(
                f"{name:14s} step losses {' '.join(f'{v:.5f}' for v in r['step_loss'])}", flush=True
            )
            return
        print(
            f"{name:14s} img/s {' '.join(f'{v:.1f}' for v in r['img_per_s'])}  "
            f"mAP50 {' '.join(f'{v:.3f}' for v in r['map50'])}  total {r['total_s']:.0f} s",
            flush=True,
        )

    full = {"detector.auto_pack": False}
    frozen = {"freeze": "frozen"}
    figures: dict[str, Any] = {}
    jobs: list[Any] = []
    dirs = {s: prepare_real(Path(args.data), work / f"split{s}", s) for s in seeds}
    first = seeds[0]
    for s in [] if args.pack_only else seeds:
        d, tag = dirs[s], f"_s{s}"
        if s == first:  # the cached arm's second run, from its warm cache

            def both(d: Path = d, tag: str = tag, s: int = s) -> None:
                arm("cached" + tag, d, frozen, train_seed=s)
                shutil.copytree(
                    work / f"home_cached{tag}" / "features",
                    work / f"home_cached_hit{tag}" / "features",
                )
                arm("cached_hit" + tag, d, frozen, train_seed=s)

            jobs.append(both)
        else:
            jobs.append(lambda d=d, tag=tag, s=s: arm("cached" + tag, d, frozen, train_seed=s))
        jobs.append(
            lambda d=d, tag=tag, s=s: arm("today" + tag, d, {"freeze_pattern": trunk}, train_seed=s)
        )
    if (
        args.probe_steps and not args.pack_only
    ):  # same first batch, no flips: the losses must agree before any update
        noflip = {"detector.augment.hflip": False}
        p = {"probe_steps": args.probe_steps, "train_seed": first, "epochs": 1}
        d = dirs[first]
        jobs += [
            lambda: arm("probe_today", d, {**noflip, "freeze_pattern": trunk}, **p),
            lambda: arm("probe_cached", d, {**noflip, **frozen}, **p),
            lambda: arm("probe_cached_fp32", d, {**noflip, **frozen, "feature_cache_dtype": "float32"}, **p),
        ]  # fmt: skip
    if args.pack_epochs:
        ds0 = Dataset.load(dirs[first])
        recs = [r for r in ds0.records if r.split in ("train", "val")]
        t0 = time.perf_counter()
        reader, _ = auto_pack(ds0, recs, opts["size"], work / "packs")
        figures["pack_build_s"] = round(time.perf_counter() - t0, 1)
        jobs += [
            lambda: arm("full", dirs[first], full, epochs=args.pack_epochs),
            lambda: arm("packed", dirs[first], {**full, "pack": str(reader.root)}, epochs=args.pack_epochs),
        ]  # fmt: skip
    if args.parallel:  # every arm at once: the same (loaded) machine for all of them
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(jobs)) as pool:
            for f in [pool.submit(j) for j in jobs]:
                f.result()
    else:
        for j in jobs:
            j()
    trained = {k: v for k, v in runs.items() if "map50" in v}
    med = {k: statistics.median(v["img_per_s"][1:] or v["img_per_s"]) for k, v in trained.items()}
    best = {k: max(v["map50"]) for k, v in trained.items()}
    f0 = f"_s{first}"
    if {"today" + f0, "cached" + f0} <= set(trained):
        target = min(best["today" + f0], best["cached" + f0])
        figures.update(
            today_img_per_s=round(med["today" + f0], 2), cached_img_per_s=round(med["cached" + f0], 2),
            cache_speedup=round(med["cached" + f0] / med["today" + f0], 2),
            target_map50=round(target, 3), today_s_to_target=_time_to(runs["today" + f0], target),
            cached_s_to_target=_time_to(runs["cached" + f0], target),
        )  # fmt: skip
        if "cached_hit" + f0 in trained:
            figures["cached_hit_s_to_target"] = _time_to(runs["cached_hit" + f0], target)
    paired = [s for s in seeds if {f"today_s{s}", f"cached_s{s}"} <= set(trained)]
    if paired:
        t = [best[f"today_s{s}"] for s in paired]
        c = [best[f"cached_s{s}"] for s in paired]
        diff = [b - a for a, b in zip(t, c, strict=True)]
        (tm, ts), (cm, cs), (dm, dsd) = _mean_sd(t), _mean_sd(c), _mean_sd(diff)
        figures.update(
            seeds=len(paired), today_best_map50_mean=round(tm, 3), today_best_map50_sd=round(ts, 3),
            cached_best_map50_mean=round(cm, 3), cached_best_map50_sd=round(cs, 3),
            cached_minus_today_mean=round(dm, 3), cached_minus_today_sd=round(dsd, 3),
            cached_not_worse_seeds=sum(1 for v in diff if v >= -1e-9),
            speedup_min=round(min(med[f"cached_s{s}"] / med[f"today_s{s}"] for s in paired), 2),
        )  # fmt: skip
    if {"probe_today", "probe_cached"} <= set(runs):
        pt = runs["probe_today"]["step_loss"][0]
        figures.update(probe_loss_today=round(pt, 5))
        for k in ("probe_cached", "probe_cached_fp32"):
            if k in runs:
                pc = runs[k]["step_loss"][0]
                figures[f"{k}_rel_diff"] = float(f"{abs(pc - pt) / abs(pt):.2g}")
    feats = work / f"home_cached{f0}" / "features"
    cache_mb = sum(f.stat().st_size for f in feats.rglob("*.npy")) / 2**20 if feats.is_dir() else 0
    if feats.is_dir():
        figures["cache_mib"] = round(cache_mb, 1)
    if args.pack_epochs and "full" in trained and "packed" in trained:
        figures.update(
            full_img_per_s=round(med["full"], 2),
            packed_img_per_s=round(med["packed"], 2),
            pack_speedup=round(med["packed"] / med["full"], 2),
        )
    details = {
        **opts, "model": model, "data": str(args.data), "seeds": seeds, "trunk": trunk, "runs": runs,
        "images": {s: sum(1 for r in Dataset.load(dirs[first]).records if r.split == s) for s in ("train", "val", "test")},
    }  # fmt: skip
    name = "detect_train_speed_real" + (f"_{args.tag}" if args.tag else "")
    report(name, figures, details)


def _argv() -> list[str]:
    import sys

    return [a.split("=")[0] for a in sys.argv[1:]]


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
    p.add_argument(
        "--seeds", default=None, help="with --data: comma-separated split seeds (e.g. 0,1,2,3); "
        "each seed is its own split and training seed, today and cached side by side",
    )  # fmt: skip
    p.add_argument("--weights", default="imagenet", help="with --data: imagenet or coco")
    p.add_argument(
        "--recipe", default=None, help="with --data: a recipe whose settings every arm starts "
        "from (model, weights, size, optimizer...); augmentation is cut to flips",
    )  # fmt: skip
    p.add_argument(
        "--probe-steps", type=int, default=1, help="with --data: no-flip probe arms (today, "
        "cached fp16, cached fp32) stopped after this many steps, first-step losses compared (0 = off)",
    )  # fmt: skip
    p.add_argument(
        "--pack-only", action="store_true", help="with --data: only the full / packed arms"
    )
    p.add_argument("--tag", default=None, help="suffix of the results file name")
    p.add_argument(
        "--precise-bn", type=int, default=None,
        help="detector.precise_bn with --data (default: the recipe's, else 16)",
    )  # fmt: skip
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
