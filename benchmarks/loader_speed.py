"""Training loader on large photos: cvpipe's ImageDataset (JPEG draft decode) vs ImageFolder.

Generates JPEG "photos" 1000-3000 px on the longer side (smooth gradients, texture and
sensor-like noise, quality 90: about as costly to decode as camera pictures), then reads
them to 224-px training tensors through a ``DataLoader`` with the same batch size and
workers on both sides:

- cvpipe: ``cvpipe.data.datasets.ImageDataset`` with ``train_transform`` and
  ``draft=draft_size(...)`` (what the trainer builds), fed by an ``EpochSampler``;
- baseline: ``torchvision.datasets.ImageFolder`` with the default PIL loader and the
  same pipeline in torchvision transforms.

Two pipelines are measured: ``center`` (Resize(256) + CenterCrop(224) + hflip, the cvpipe
default and the frozen-backbone recipe) and ``random-resized`` (RandomResizedCrop(224) +
hflip, full fine-tuning). Each measurement is a fresh process; sides alternate
(cvpipe, ImageFolder, cvpipe-pack, cvpipe, ...) and images/s medians are reported.

A third arm reads the same photos from a pack (``cvpipe pack``: decoded once, shorter
side stored at the pipeline's ``draft_size``, 256 px for ``center`` and 448 px for
``random-resized``, so small-area crops keep their detail). The pack's one-off cost is
reported with the number of epochs after which packing has paid for itself, and
``speedup_*_pack_10_epochs`` compares a 10-epoch run end to end (pack + 10 pack-fed
epochs against 10 ImageFolder epochs).

Decoding bounds the JPEG arm of ``random-resized``: libjpeg-turbo must entropy-decode
every coefficient whatever the draft scale, so a 1/8-scale decode still costs about 70%
of a full one (``decode_floor`` in the details: ms per photo at scale 1, 1/2, 1/4, 1/8).

    python benchmarks/loader_speed.py            # 200 photos, 2 rounds
    python benchmarks/loader_speed.py --quick    # 48 photos, 1 round
"""

from __future__ import annotations

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

CLASSES = ("a", "b", "c", "d")
SIZE, RESIZE = 224, 256


def make_photos(root: Path, n: int) -> None:
    """``n`` JPEG photos of 1000-3000 px in an ImageFolder layout root/CLASS/*.jpg."""
    rng = np.random.default_rng(0)
    for i in range(n):
        long = int(rng.integers(1000, 3001))
        short = int(long * rng.uniform(0.6, 0.8))
        w, h = (long, short) if i % 3 else (short, long)
        # a smooth scene at 1/8 scale, upsampled, plus fine texture and noise
        small = rng.uniform(0, 255, (max(2, h // 64), max(2, w // 64), 3)).astype(np.uint8)
        base = np.asarray(
            Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), np.float32
        )
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        texture = 18 * np.sin(xx / rng.uniform(3, 9) + yy / rng.uniform(4, 11))
        noise = rng.normal(0, 10, (h, w, 1)).astype(np.float32)
        arr = (base + texture[..., None] + noise).clip(0, 255).astype(np.uint8)
        d = root / CLASSES[i % len(CLASSES)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(d / f"photo_{i:04d}.jpg", quality=90)


def as_cli_process() -> None:
    """In a ``run_isolated`` child, restore the platform's default start method.

    The spawned child inherits ``spawn``, which would make every DataLoader worker
    re-import torch and cvpipe (tens of seconds on a loaded 2-core machine); ``cvpipe
    train`` launched from a shell uses the default (``fork`` on Linux).
    """
    import multiprocessing as mp

    mp.set_start_method(None, force=True)


def photo_dataset(root: str) -> Any:
    """A cvpipe dataset over the ImageFolder layout (sizes from the headers)."""
    from cvpipe.data.manifest import Dataset, DatasetInfo, Record
    from cvpipe.images import probe

    recs = []
    for ci, c in enumerate(CLASSES):
        for f in sorted((Path(root) / c).glob("*.jpg")):
            info = probe(f)
            recs.append(
                Record(
                    id=f.stem,
                    file=f"{c}/{f.name}",
                    width=info.width,
                    height=info.height,
                    split="train",
                    label=ci,
                )
            )
    return Dataset(
        Path(root), DatasetInfo(name="photos", task="classify", classes=list(CLASSES)), recs
    )


def pipeline(crop: str) -> tuple[Any, Any]:
    from cvpipe.data.transforms import AugmentConfig
    from cvpipe.models.preprocess import Preprocess

    pre = Preprocess(input_size=SIZE, resize_size=RESIZE)
    return pre, AugmentConfig(crop=crop, hflip=True)  # type: ignore[arg-type]


def cvpipe_side(
    root: str, crop: str, batch: int, workers: int, pack: str | None = None
) -> dict[str, Any]:
    as_cli_process()
    import torch
    from torch.utils.data import DataLoader

    from cvpipe.data.datasets import EpochSampler, ImageDataset, collate_skip
    from cvpipe.data.pack import PackReader
    from cvpipe.data.transforms import draft_size, train_transform

    ds = photo_dataset(root)
    recs = ds.records
    pre, aug = pipeline(crop)
    reader = PackReader.open(pack) if pack else None
    data = ImageDataset(
        ds, recs, train_transform(pre, aug), draft=draft_size(pre, aug), pack=reader
    )
    sampler = EpochSampler(len(data), seed=0)
    loader = DataLoader(data, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate_skip,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    t0 = time.perf_counter()
    n = sum(int(b[0].shape[0]) for b in loader)
    return {"images": n, "seconds": time.perf_counter() - t0, "draft": draft_size(pre, aug)}


def imagefolder_side(root: str, crop: str, batch: int, workers: int) -> dict[str, Any]:
    as_cli_process()
    import torch
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    if crop == "center":
        geo = [T.Resize(RESIZE, antialias=True), T.CenterCrop(SIZE)]
    else:
        geo = [T.RandomResizedCrop(SIZE, antialias=True)]
    tf = T.Compose([*geo, T.RandomHorizontalFlip(), T.PILToTensor(), T.ConvertImageDtype(torch.float),
                    T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])  # fmt: skip
    data = torchvision.datasets.ImageFolder(root, tf)
    loader = DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers)
    t0 = time.perf_counter()
    n = sum(int(b[0].shape[0]) for b in loader)
    return {"images": n, "seconds": time.perf_counter() - t0}


def pack_side(root: str, crop: str, out: str) -> dict[str, Any]:
    """Build the pack the ``cvpipe-pack`` arm reads (``cvpipe pack --size draft_size``)."""
    from cvpipe.data.pack import PackConfig, pack_dataset
    from cvpipe.data.transforms import draft_size

    pre, aug = pipeline(crop)
    size = draft_size(pre, aug)
    t0 = time.perf_counter()
    res = pack_dataset(photo_dataset(root), out, PackConfig(size=size))
    return {"seconds": time.perf_counter() - t0, "size": size, "mib": res.bytes / 2**20}


def decode_floor(root: Path, n: int = 24) -> dict[str, float]:
    """ms per photo to decode at JPEG scale 1, 1/2, 1/4 and 1/8 (one process)."""
    files = sorted(root.rglob("*.jpg"))[:n]
    out = {}
    for scale in (1, 2, 4, 8):
        t0 = time.perf_counter()
        for f in files:
            with Image.open(f) as im:
                if scale > 1:
                    im.draft("RGB", (im.width // scale, im.height // scale))
                im.load()
        out[f"1/{scale}"] = round((time.perf_counter() - t0) / len(files) * 1000, 2)
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args()
    n = 48 if args.quick else 200
    rounds = args.rounds or (1 if args.quick else 2)
    batch, workers = 32, min(4, os.cpu_count() or 1)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-loader-"))
    try:
        t = time.perf_counter()
        make_photos(work / "photos", n)
        mb = sum(f.stat().st_size for f in (work / "photos").rglob("*.jpg")) / 2**20
        print(f"{n} photos 1000-3000 px, {mb:.0f} MiB, made in {time.perf_counter() - t:.0f} s; "
              f"batch {batch}, {workers} workers", flush=True)  # fmt: skip
        figures: dict[str, Any] = {}
        details: dict[str, Any] = {
            "photos": n,
            "photo_mib": round(mb, 1),
            "batch": batch,
            "workers": workers,
        }
        details["decode_floor_ms"] = decode_floor(work / "photos")
        for crop in ("center", "random-resized"):
            pack = str(work / f"pack-{crop}")
            _, _, packed = run_isolated(pack_side, str(work / "photos"), crop, pack)
            print(f"{crop:15s} pack at {packed['size']} px: {packed['mib']:.0f} MiB in "
                  f"{packed['seconds']:.1f} s", flush=True)  # fmt: skip
            sides = (
                ("cvpipe", cvpipe_side, ()),
                ("imagefolder", imagefolder_side, ()),
                ("cvpipe-pack", cvpipe_side, (pack,)),
            )
            got: dict[str, list[float]] = {side: [] for side, _, _ in sides}
            for r in range(rounds):
                for side, fn, extra in sides:
                    _, rss, res = run_isolated(
                        fn, str(work / "photos"), crop, batch, workers, *extra
                    )
                    ips = res["images"] / res["seconds"]
                    got[side].append(ips)
                    print(f"{crop:15s} round {r + 1}/{rounds} {side:12s} {res['images']} images "
                          f"{ips:7.1f} img/s", flush=True)  # fmt: skip
            med = {k: statistics.median(v) for k, v in got.items()}
            key = crop.replace("-", "_")
            figures[f"speedup_{key}"] = round(med["cvpipe"] / med["imagefolder"], 2)
            figures[f"cvpipe_img_s_{key}"] = round(med["cvpipe"], 1)
            figures[f"imagefolder_img_s_{key}"] = round(med["imagefolder"], 1)
            figures[f"speedup_{key}_pack"] = round(med["cvpipe-pack"] / med["imagefolder"], 2)
            # epochs after which pack + pack-fed epochs beat decoding every epoch
            saved = n / med["cvpipe"] - n / med["cvpipe-pack"]
            details[crop] = {k: [round(x, 2) for x in v] for k, v in got.items()}
            # a 10-epoch run end to end: pack once + 10 pack-fed epochs vs 10 ImageFolder epochs
            figures[f"speedup_{key}_pack_10_epochs"] = round(
                (10 * n / med["imagefolder"]) / (packed["seconds"] + 10 * n / med["cvpipe-pack"]), 2
            )
            details[crop]["pack"] = {
                "size": packed["size"], "mib": round(packed["mib"], 1),
                "seconds": round(packed["seconds"], 2),
                "pays_off_after_epochs": round(packed["seconds"] / saved, 1) if saved > 0 else None,
            }  # fmt: skip
        figures["photos"] = n
        report("loader_speed", figures, details)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
