"""Full fine-tuning img/s: cvpipe's trainer vs a plain loop in the style of torchvision's reference.

The baseline is written the way ``references/classification/train.py`` (torchvision) does
it: ``torchvision.datasets.ImageFolder`` with the reference train preset
(``RandomResizedCrop`` bilinear + ``RandomHorizontalFlip`` + ``PILToTensor`` +
``ConvertImageDtype`` + ``Normalize``), a ``DataLoader`` with a ``RandomSampler``, the
same worker count, ``pin_memory``, and per step: ``to(device)``, forward, loss,
``zero_grad``, ``backward``, ``optimizer.step``, then ``loss.item()`` and top-1 accuracy
for the metric logger. cvpipe runs ``cvpipe.engine.trainer.train`` on a manifest that
references the very same JPEG files (``freeze: full``, ``weights: none``,
``augment.crop: random-resized``, hflip), with the same model (torchvision
``resnet18``, random init), batch size, optimizer (SGD lr 0.1, momentum 0.9, wd 1e-4) and
number of steps.

img/s is measured the same way on both sides, after ``--warmup`` steps: images of the
remaining steps divided by the wall time from the end of the last warmup step to the end
of the last step (data loading included). cvpipe's per-step rows in metrics.jsonl give
its step times; its checkpoint, validation and run-directory writes happen outside the
measured steps.

Each measurement is a fresh process; sides alternate per round (cvpipe, plain, cvpipe,
plain) and medians are reported, for each setting:

- ``default``: what each side does out of the box: cvpipe's ``amp: auto`` (off on CPU)
  and ``channels_last: auto`` (on for CPU) against the reference script's
  fp32 NCHW loop. This is the headline ratio.
- ``fp32``, ``channels_last``, ``bf16`` (autocast), ``bf16_channels_last``: both sides
  with the same setting, so the ratio isolates cvpipe's loop and loader.

Kept small for a 2-core CPU: 128-px crops of ~288x256 JPEGs.

    python benchmarks/finetune_speed.py            # batch 32, 24 steps, all 5 settings, 2 rounds
    python benchmarks/finetune_speed.py --quick    # batch 16, 10 steps, default + fp32, 1 round
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import parser, report, run_isolated
from PIL import Image

MODEL = "resnet18"
CLASSES = ("a", "b", "c", "d")
POOL = 32
SETTINGS = {  # name: (amp, channels_last); "default": cvpipe's auto vs the reference default
    "default": ("auto", None),
    "fp32": ("off", False),
    "channels_last": ("off", True),
    "bf16": ("bf16", False),
    "bf16_channels_last": ("bf16", True),
}


def make_images(root: Path, n_train: int, n_val: int) -> None:
    """ImageFolder layout root/{train,val}/CLASS/*.jpg (hard links to a small pool)."""
    rng = np.random.default_rng(0)
    pool = root / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    w, h = 288, 256
    yy, xx = np.mgrid[0:h, 0:w]
    files = []
    for i in range(POOL):
        base = (np.sin(xx / (9 + i)) + np.cos(yy / (7 + i))) * 60 + 128
        arr = np.stack([base + rng.normal(0, 25, (h, w)) for _ in range(3)], -1)
        p = pool / f"p{i}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(p, quality=90)
        files.append(p)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            c = CLASSES[i % len(CLASSES)]
            d = root / "imgs" / split / c
            d.mkdir(parents=True, exist_ok=True)
            os.link(files[i % POOL], d / f"{split}_{i:05d}.jpg")


def make_manifest(root: Path) -> Path:
    from cvpipe.data.manifest import Dataset, DatasetInfo, Record

    recs = []
    for split in ("train", "val"):
        for ci, c in enumerate(CLASSES):
            for f in sorted((root / "imgs" / split / c).glob("*.jpg")):
                rel = f.relative_to(root / "imgs").as_posix()
                recs.append(
                    Record(id=f.stem, file=rel, width=288, height=256, split=split, label=ci)
                )
    info = DatasetInfo(
        name="ft", task="classify", classes=list(CLASSES), image_root=str(root / "imgs")
    )
    return Dataset(root / "ds", info, recs).save()


def _img_per_s(step_times: list[float], step_images: list[int], warmup: int) -> float:
    return sum(step_images[warmup:]) / sum(step_times[warmup:])


def as_cli_process() -> None:
    """In a ``run_isolated`` child, restore the platform's default start method.

    The spawned child inherits ``spawn``, which would make every DataLoader worker
    re-import torch and cvpipe (tens of seconds on a loaded 2-core machine); ``cvpipe
    train`` launched from a shell uses the default (``fork`` on Linux).
    """
    import multiprocessing as mp

    mp.set_start_method(None, force=True)


def cvpipe_side(
    ds: str, out: str, setting: str, batch: int, size: int, warmup: int, workers: int
) -> dict[str, Any]:
    as_cli_process()
    from cvpipe.config import load_config
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train

    amp, cl = SETTINGS[setting]
    cfg = load_config(
        TrainConfig,
        overrides=[
            f"model={MODEL}", "weights=none", "freeze=full", "epochs=1", f"batch_size={batch}",
            f"input_size={size}", "augment.crop=random-resized", "augment.hflip=true",
            "optimizer.name=sgd", "optimizer.lr=0.1", "optimizer.momentum=0.9", "optimizer.weight_decay=0.0001",
            f"amp='{amp}'", f"channels_last='{'auto' if cl is None else 'on' if cl else 'off'}'",
            f"workers={workers}", "device=cpu", "seed=0",
        ],
    )  # fmt: skip
    train(ds, out, cfg)
    with open(Path(out) / "metrics.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    steps = [r for r in rows if r["kind"] == "step"]
    # each row's window: images of that step / its wall time (loading included)
    times = [batch / r["img_per_s"] for r in steps]
    return {"img_per_s": _img_per_s(times, [batch] * len(steps), warmup), "steps": len(steps)}


def plain_side(
    root: str, setting: str, batch: int, size: int, warmup: int, workers: int, steps: int
) -> dict[str, Any]:
    as_cli_process()
    import torch
    import torchvision
    from torchvision import transforms

    amp, cl = SETTINGS[setting]
    amp, cl = ("off" if amp == "auto" else amp), bool(cl)  # the reference: fp32, NCHW
    torch.manual_seed(0)
    device = torch.device("cpu")
    # references/classification/presets.py ClassificationPresetTrain (v1 transforms)
    tf = transforms.Compose([
        transforms.RandomResizedCrop(size, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True),
        transforms.RandomHorizontalFlip(0.5),
        transforms.PILToTensor(),
        transforms.ConvertImageDtype(torch.float),
        transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ])  # fmt: skip
    dataset = torchvision.datasets.ImageFolder(os.path.join(root, "imgs", "train"), tf)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=torch.utils.data.RandomSampler(dataset),
        num_workers=workers, pin_memory=True,
    )  # fmt: skip
    model = torchvision.models.resnet18(weights=None, num_classes=len(CLASSES)).to(device)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model.train()
    times, images = [], []
    last = time.perf_counter()
    for i, (image, target) in enumerate(loader):
        if i >= steps:
            break
        image, target = image.to(device), target.to(device)
        if cl:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            output = model(image)
            loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        acc1 = (output.argmax(1) == target).float().mean() * 100
        _ = loss.item(), acc1.item(), optimizer.param_groups[0]["lr"]
        now = time.perf_counter()
        times.append(now - last)
        images.append(image.shape[0])
        last = now
    return {"img_per_s": _img_per_s(times, images, warmup), "steps": len(times)}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds per setting")
    p.add_argument(
        "--settings", default=None, help="comma-separated subset of: " + ",".join(SETTINGS)
    )
    args = p.parse_args()
    batch, size, steps, warmup = (16, 112, 10, 3) if args.quick else (32, 128, 24, 4)
    rounds = args.rounds or (1 if args.quick else 2)
    settings = (
        args.settings.split(",")
        if args.settings
        else (["default", "fp32"] if args.quick else list(SETTINGS))
    )
    workers = min(4, os.cpu_count() or 1)  # cvpipe's default worker count, used by both
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-ft-"))
    try:
        make_images(work, steps * batch, batch)
        ds = make_manifest(work)
        print(f"{MODEL} weights=none, batch {batch}, {size}-px crops, {steps} steps ({warmup} warmup), "
              f"{workers} workers, {os.cpu_count()} CPUs", flush=True)  # fmt: skip
        details: dict[str, Any] = {}
        figures: dict[str, Any] = {}
        for s in settings:
            got: dict[str, list[float]] = {"cvpipe": [], "plain": []}
            for r in range(rounds):
                out = work / f"run_{s}_{r}"
                _, _, c = run_isolated(
                    cvpipe_side, str(ds), str(out), s, batch, size, warmup, workers
                )
                shutil.rmtree(out, ignore_errors=True)
                _, _, b = run_isolated(
                    plain_side, str(work), s, batch, size, warmup, workers, steps
                )
                got["cvpipe"].append(c["img_per_s"])
                got["plain"].append(b["img_per_s"])
                print(f"{s:20s} round {r + 1}/{rounds}: cvpipe {c['img_per_s']:6.1f} img/s ({c['steps']} steps) | "
                      f"plain {b['img_per_s']:6.1f} img/s ({b['steps']} steps)", flush=True)  # fmt: skip
            med = {k: statistics.median(v) for k, v in got.items()}
            ratio = med["cvpipe"] / med["plain"]
            details[s] = {"cvpipe_img_per_s": [round(v, 2) for v in got["cvpipe"]],
                          "plain_img_per_s": [round(v, 2) for v in got["plain"]],
                          "median_cvpipe": round(med["cvpipe"], 2), "median_plain": round(med["plain"], 2),
                          "ratio": round(ratio, 3)}  # fmt: skip
            figures[f"ratio_{s}"] = round(ratio, 2)
            figures[f"cvpipe_img_s_{s}"] = round(med["cvpipe"], 1)
        base = details.get("fp32")
        if base:
            for d in details.values():
                d["cvpipe_vs_cvpipe_fp32"] = round(d["median_cvpipe"] / base["median_cvpipe"], 3)
        figures.update(batch=batch, size=size, steps=steps)
        report("finetune_speed", figures, {
            "model": f"torchvision {MODEL}, weights=None", "batch": batch, "crop": size,
            "steps": steps, "warmup": warmup, "workers": workers, "rounds": rounds,
            "cvpipe_cpu_defaults": "amp auto -> off (fp32), channels_last auto -> on",
            "settings": details,
            "note": "CPU only, 2 shared cores; img/s after warmup, data loading included; median over alternating rounds",
        })  # fmt: skip
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
