"""Eval of many images streams: peak RSS of ``evaluate_run`` at N images vs 10x N images.

Builds a classify dataset of N tiny JPEGs (32x32, hard links to a pool of 32 files so
50k images cost almost no disk) with ``cvpipe.data.manifest`` ``Dataset``/``Record``, a
tiny fabricated run (``base_cnn`` at 32 px, random weights, model card, checkpoint,
dataset.lock — like ``tests/engine/test_evaluate.py``'s ``make_run``), then runs
``cvpipe.evaluation.evaluate.evaluate_run`` (metrics.json, predictions.jsonl, report.html)
in a fresh process per size and records its peak RSS. A second fresh process per size
only loads the dataset (``Dataset.load``), which is the unavoidable cost of the
per-image records; the difference is what evaluation itself holds.

Sizes alternate small, large, small, large (``--rounds``); medians are reported, with the
RSS growth per 10k images of the whole eval and of the eval beyond the records.

    python benchmarks/eval_memory.py            # 5k vs 50k images
    python benchmarks/eval_memory.py --quick    # 1k vs 5k images
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

CLASSES = ("a", "b", "c")
POOL = 32


def make_dataset(root: Path, n: int, pool: list[Path]) -> Path:
    from cvpipe.data.manifest import Dataset, DatasetInfo, Record

    imgs = root / "images"
    imgs.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        f = f"images/img_{i:06d}.jpg"
        os.link(pool[i % POOL], root / f)
        recs.append(
            Record(id=f"img_{i:06d}", file=f, width=32, height=32, split="test", label=i % 3)
        )
    return Dataset(
        root, DatasetInfo(name=root.name, task="classify", classes=list(CLASSES)), recs
    ).save()


def make_pool(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(POOL):
        p = root / f"pool_{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(p, quality=90)
        out.append(p)
    return out


def make_run(run: Path, ds_root: Path) -> Path:
    """A tiny trained-looking run: model card, best.pt, dataset.lock (random weights)."""
    import torch

    from cvpipe.data.manifest import Dataset
    from cvpipe.engine.checkpoint import save_checkpoint
    from cvpipe.engine.runs import ModelCard
    from cvpipe.models.classification import create_classifier
    from cvpipe.models.heads import HeadSpec

    ds = Dataset.load(ds_root)
    torch.manual_seed(0)
    net = create_classifier(
        "base_cnn", num_classes=len(CLASSES), weights=None, input_size=32, head=HeadSpec()
    )
    card = ModelCard(task="classify", classes=list(CLASSES), model="base_cnn", head={},
                     preprocess=net.preprocess, input_size=32)  # fmt: skip
    card.save(run / "model_card.json")
    meta = {"task": "classify", "classes": list(CLASSES), "model": "base_cnn"}
    save_checkpoint(run / "checkpoints" / "best.pt", {"model": net.state_dict(), "epoch": 1}, meta)
    lock = {"dataset": str(ds.root.resolve()), "manifest_sha256": ds.manifest_hash(), "splits": {}}
    (run / "dataset.lock").write_text(json.dumps(lock))
    (run / "metrics.jsonl").write_text(
        json.dumps({"kind": "epoch", "epoch": 1, "val.loss": 1.0}) + "\n"
    )
    return run


def eval_child(run: str, ds_root: str, out: str) -> dict[str, Any]:
    import torch

    from cvpipe.evaluation.evaluate import evaluate_run

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res = evaluate_run(run, data=ds_root, split="test", out=out, batch_size=64, workers=0)
    return {
        "n": res.metrics["n"],
        "seconds": time.perf_counter() - t0,
        "accuracy": res.metrics["accuracy"],
    }


def load_child(ds_root: str) -> int:
    import torch  # noqa: F401 - same imports as the eval child, so the RSS floor matches

    from cvpipe.data.manifest import Dataset
    from cvpipe.evaluation.evaluate import evaluate_run  # noqa: F401

    return len(Dataset.load(ds_root))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args()
    small, large = (1000, 5000) if args.quick else (5000, 50000)
    rounds = args.rounds or (1 if args.quick else 2)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-evalmem-"))
    try:
        pool = make_pool(work / "pool")
        roots = {n: make_dataset(work / f"ds_{n}", n, pool) for n in (small, large)}
        run = make_run(work / "run", roots[small])
        print(
            f"datasets of {small} and {large} images (hard links to {POOL} 32x32 JPEGs); base_cnn run",
            flush=True,
        )
        peaks: dict[int, list[float]] = {small: [], large: []}
        floors: dict[int, list[float]] = {small: [], large: []}
        secs: dict[int, list[float]] = {small: [], large: []}
        for r in range(rounds):
            for n in (small, large):
                _, rss_load, _ = run_isolated(load_child, str(roots[n]))
                _, rss, res = run_isolated(
                    eval_child, str(run), str(roots[n]), str(work / f"eval_{n}")
                )
                if res["n"] != n:
                    raise RuntimeError(f"evaluated {res['n']} of {n} images")
                peaks[n].append(rss)
                floors[n].append(rss_load)
                secs[n].append(res["seconds"])
                print(f"round {r + 1}/{rounds} N={n:6d}: eval peak RSS {rss:7.1f} MiB "
                      f"(dataset load alone {rss_load:7.1f} MiB), {n / res['seconds']:6.0f} img/s", flush=True)  # fmt: skip
        pk = {n: statistics.median(v) for n, v in peaks.items()}
        fl = {n: statistics.median(v) for n, v in floors.items()}
        per10k = 1e4 / (large - small)
        growth = (pk[large] - pk[small]) * per10k
        growth_beyond = ((pk[large] - fl[large]) - (pk[small] - fl[small])) * per10k
        pred_mib = (work / f"eval_{large}" / "predictions.jsonl").stat().st_size / 2**20
        figures = {
            f"peak_rss_mib_{small}": round(pk[small], 1),
            f"peak_rss_mib_{large}": round(pk[large], 1),
            "growth_mib_per_10k": round(growth, 2),
            "records_growth_mib_per_10k": round((fl[large] - fl[small]) * per10k, 2),
            "eval_growth_beyond_records_mib_per_10k": round(growth_beyond, 2),
        }
        details = {
            "sizes": [small, large], "rounds": rounds,
            "eval_peak_rss_mib": {str(n): [round(x, 1) for x in v] for n, v in peaks.items()},
            "dataset_load_peak_rss_mib": {str(n): [round(x, 1) for x in v] for n, v in floors.items()},
            "eval_seconds": {str(n): [round(x, 1) for x in v] for n, v in secs.items()},
            "predictions_jsonl_mib_large": round(pred_mib, 1),
            "setup": "base_cnn at 32 px, random weights, batch 64, workers 0, 1 torch thread, report.html on",
        }  # fmt: skip
        report("eval_memory", figures, details)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
