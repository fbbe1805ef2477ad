"""Classifier recipes on real photos at one CPU budget: frozen head vs last-n vs full fine-tune.

Imports ``hymenoptera`` and ``weather`` from ``--data`` (the devdata folder; never
committed) with ``cvpipe import imagefolder``. weather keeps its train/val/test folders;
hymenoptera has train/val only, so it is re-split seeded and stratified 60/15/25
(``cvpipe split --ratios 60/15/25 --seed 0 --force``: 238/60/99) to get a test set.

Every arm trains ``--model`` (default ``tf_efficientnet_lite0``, ImageNet weights resolved
offline from the installed package) with ``cvpipe.engine.trainer.train`` in a fresh
process, batch 32, seed 0, ``workers: 0`` (all work in one process, so its CPU time is the
whole cost), the default augmentation (centre crop + horizontal flip, which the caches
reproduce exactly), constant learning rate, early stopping on ``val.loss`` (patience
``--patience``), and stops when the process has used ``--budget`` CPU seconds
(``time.process_time``: every thread of the process, feature passes included; one torch
thread by default, see ``--threads``); ``best.pt``
is then evaluated on the test split (``cvpipe eval``, outside the budget):

- ``frozen``: ``freeze: frozen``, cached pooled features (today's default), Adam 2e-3;
- ``lastn_cached``: ``freeze: last-n`` (``--last-n`` stages), ``feature_cache: on``:
  the frozen stem's activations cached once (fp16, memory-mapped, base + flip), Adam 5e-4;
- ``lastn``: the same recipe from images (the stem runs every epoch);
- ``full``: ``freeze: full`` from images, Adam 2e-4.

A CPU-second budget rather than wall time, because the machine is shared: the arms of a
dataset run one after another and the load moves between them. Each arm's cache
directory starts empty, so the feature pass is inside its budget. Reported per dataset and
arm: test accuracy, CPU and wall minutes, epochs, the val accuracy after 25/50/100% of
the budget; the cached vs uncached last-n epoch-time ratio; the activation cache's size.

    python benchmarks/classify_quality.py --data ../shared/devdata --parallel  # 180 CPU-s per arm, 1 thread
    python benchmarks/classify_quality.py --data ../shared/devdata --quick    # small subset, 96 px
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import parser, report, run_isolated

ARMS: dict[str, list[str]] = {
    "frozen": ["freeze=frozen", "optimizer.lr=0.002"],
    "lastn_cached": ["freeze=last-n", "feature_cache=on", "optimizer.lr=0.0005"],
    "lastn": ["freeze=last-n", "feature_cache=off", "optimizer.lr=0.0005"],
    "full": ["freeze=full", "optimizer.lr=0.0002"],
}
SETS = ("hymenoptera", "weather")


def cli(*args: str) -> None:
    """Run ``cvpipe ARGS`` (this interpreter, this source tree)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    subprocess.run(
        [sys.executable, "-m", "cvpipe.cli.main", *args, "--no-progress", "-q"],
        check=True,
        env=env,
    )


def prepare(data: Path, name: str, out: Path, per_class: int | None) -> Path:
    """Import (and for hymenoptera re-split) one devdata set; optionally subsample it."""
    cli("import", "imagefolder", str(data / name), "--out", str(out))
    if name == "hymenoptera":
        cli("split", str(out), "--ratios", "60/15/25", "--seed", "0", "--force")
    if per_class:
        from cvpipe.data.manifest import Dataset

        ds = Dataset.load(out)
        seen: dict[tuple[str | None, int], int] = {}
        keep = []
        for r in ds.records:
            k = (r.split, ds.class_index(r))
            seen[k] = seen.get(k, 0) + 1
            if seen[k] <= per_class:
                keep.append(r)
        ds.records = keep
        ds.save()
    return out


def train_arm(
    dataset: str, out: str, cache: str, overrides: list[str], budget: float, threads: int
) -> dict[str, Any]:
    """One arm in a fresh process: train within ``budget`` CPU seconds, then eval on test."""
    import multiprocessing as mp

    import torch

    mp.set_start_method(None, force=True)
    torch.set_num_threads(threads)
    from cvpipe.config import load_config
    from cvpipe.engine.callbacks import Callback
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train
    from cvpipe.evaluation.evaluate import evaluate_run

    c0, w0 = time.process_time(), time.perf_counter()
    epochs: list[dict[str, Any]] = []
    start: dict[str, float] = {}

    class Budget(Callback):
        def on_train_start(self, state: Any) -> None:
            start.update(cpu=time.process_time() - c0, wall=time.perf_counter() - w0)

        def on_step_end(self, state: Any, row: dict[str, Any]) -> None:
            if time.process_time() - c0 > budget:
                state.stop = True
                state.stop_reason = f"CPU budget of {budget:.0f} s used"

        def on_epoch_end(self, state: Any, row: dict[str, Any]) -> None:
            epochs.append(
                {
                    "epoch": row["epoch"],
                    "cpu_s": round(time.process_time() - c0, 1),
                    "wall_s": round(time.perf_counter() - w0, 1),
                    "time_s": round(row["time_s"], 2),
                    "images": row["train.images"],
                    "val_accuracy": round(float(row["val.accuracy"]), 4),
                    "val_loss": round(float(row["val.loss"]), 4),
                }
            )

    cfg = load_config(TrainConfig, overrides=[*overrides, f"feature_cache_dir={cache}"])
    res = train(dataset, out, cfg, callbacks=[Budget()])
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    t0 = time.perf_counter()
    ev = evaluate_run(out, split="test", report=False, workers=0)
    return {
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "setup_cpu_s": round(start.get("cpu", 0.0), 1),
        "setup_wall_s": round(start.get("wall", 0.0), 1),
        "eval_wall_s": round(time.perf_counter() - t0, 1),
        "test_accuracy": round(float(ev.metrics["accuracy"]), 4),
        "best_epoch": res.best_epoch,
        "best_val_accuracy": round(float((res.best or {}).get("val.accuracy", 0.0)), 4),
        "stopped_early": res.stopped_early,
        "feature_cache": res.feature_cache,
        "epochs": epochs,
    }


def at_fraction(epochs: list[dict[str, Any]], budget: float, frac: float) -> float | None:
    """Val accuracy of the last epoch finished within ``frac`` of the budget."""
    done = [e for e in epochs if e["cpu_s"] <= frac * budget]
    return done[-1]["val_accuracy"] if done else None


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run_set(
    name: str, dataset: Path, work: Path, base: list[str], budget: float, threads: int,
    arms: list[str],
) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {}
    for arm in arms:
        extra = ARMS[arm]
        cache = work / f"cache_{name}_{arm}"  # empty: the feature pass is inside the budget
        run = work / f"run_{name}_{arm}"
        _, rss, res = run_isolated(
            train_arm, str(dataset), str(run), str(cache), [*base, *extra], budget, threads
        )
        res["peak_rss_mib"] = round(rss, 1)
        res["cache_mb"] = round(dir_mb(cache), 1) if cache.exists() else 0.0
        res["val_at_budget"] = {
            f"{int(f * 100)}%": at_fraction(res["epochs"], budget, f) for f in (0.25, 0.5, 1.0)
        }
        out[arm] = res
        print(
            f"{name:12s} {arm:13s} test.acc {res['test_accuracy']:.4f}  cpu {res['cpu_s']:6.0f} s  "
            f"wall {res['wall_s']:6.0f} s  epochs {len(res['epochs']):3d}  best@{res['best_epoch']}  "
            f"cache {res['feature_cache']} {res['cache_mb']:.0f} MB  val@25/50/100% "
            f"{list(res['val_at_budget'].values())}",
            flush=True,
        )
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
    return out


def epoch_cpu(res: dict[str, Any]) -> list[float]:
    """CPU seconds of each epoch (train + val); the first one without the setup."""
    prev, out = res["setup_cpu_s"], []
    for e in res["epochs"]:
        out.append(e["cpu_s"] - prev)
        prev = e["cpu_s"]
    return out


def epoch_speedup(arms: dict[str, Any], cpu: bool = False) -> float | None:
    """Median epoch time (train + val) of last-n from images over last-n from the cache
    (wall seconds, or CPU seconds, which the machine's load moves less)."""

    def med(arm: str) -> float | None:
        t = epoch_cpu(arms[arm]) if cpu else [e["time_s"] for e in arms[arm]["epochs"]]
        full = t[:-1] or t  # the last epoch may be cut short by the budget
        return statistics.median(full) if full else None

    if "lastn" not in arms or "lastn_cached" not in arms:
        return None
    a, b = med("lastn"), med("lastn_cached")
    return round(a / b, 2) if a and b else None


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="devdata folder with hymenoptera/ and weather/")
    p.add_argument("--budget", type=float, default=None, help="CPU seconds per arm (180)")
    p.add_argument("--model", default="tf_efficientnet_lite0")
    p.add_argument("--last-n", type=int, default=3, help="stages trained by the last-n arms")
    p.add_argument("--patience", type=int, default=6, help="early stopping on val.loss")
    p.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of " + str(SETS))
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads per arm (1: on a loaded 2-core machine two OpenMP threads spun "
        "in barriers, making small layers up to 20x slower)",
    )  # fmt: skip
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of the arms")
    p.add_argument(
        "--parallel",
        action="store_true",
        help="run the datasets at the same time (one process each)",
    )
    p.add_argument(
        "--tag", default="", help="results file suffix: results/classify_quality_TAG.json"
    )
    args = p.parse_args()
    arms = args.arms.split(",")
    if unknown := [a for a in arms if a not in ARMS]:
        p.error(f"unknown arm(s) {unknown}; valid: {', '.join(ARMS)}")
    budget = args.budget or (15.0 if args.quick else 180.0)
    sets = ["hymenoptera"] if args.quick else args.sets.split(",")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-classify-"))
    try:
        base = [
            f"model={args.model}", "weights=imagenet", f"last_n={args.last_n}", "batch_size=32",
            "epochs=40", "optimizer.name=adam", "seed=0", "device=cpu", "workers=0",
            f"early_stopping.patience={args.patience}",
        ]  # fmt: skip
        if args.quick:
            base += ["input_size=96", "epochs=3"]
        figures: dict[str, Any] = {}
        details: dict[str, Any] = {"config": base, "arms": ARMS, "budget_cpu_s": budget}
        from concurrent.futures import ThreadPoolExecutor

        from cvpipe.data.manifest import Dataset

        paths = {n: prepare(Path(args.data), n, work / n, 8 if args.quick else None) for n in sets}
        with ThreadPoolExecutor(len(sets) if args.parallel else 1) as pool:
            jobs = {
                n: pool.submit(run_set, n, d, work, base, budget, args.threads, arms)
                for n, d in paths.items()
            }
            results = {n: j.result() for n, j in jobs.items()}
        for name, got in results.items():
            splits = Dataset.load(paths[name]).splits()
            details[name] = {"splits": splits, "arms": got}
            acc = {a: r["test_accuracy"] for a, r in got.items()}
            for a, r in got.items():
                figures[f"{name}_{a}_acc"] = r["test_accuracy"]
                figures[f"{name}_{a}_min"] = round(r["wall_s"] / 60, 2)
            for a in ("lastn_cached", "lastn", "full"):
                if a in acc and "frozen" in acc:
                    figures[f"{name}_{a}_vs_frozen_pts"] = round(100 * (acc[a] - acc["frozen"]), 1)
            figures[f"{name}_lastn_cache_epoch_speedup"] = epoch_speedup(got)
            figures[f"{name}_lastn_cache_epoch_cpu_speedup"] = epoch_speedup(got, cpu=True)
            if "lastn_cached" in got:
                figures[f"{name}_lastn_cache_mb"] = got["lastn_cached"]["cache_mb"]
            figures[f"{name}_best"] = max(acc, key=lambda a: (acc[a], -got[a]["cpu_s"]))
        details["note"] = (
            "2-core CPU shared with other engineers' jobs (loaded machine): budgets are CPU "
            "seconds of the training process, wall minutes are as measured under that load; one "
            f"run per arm ({args.threads} torch thread(s)), arms in sequence per dataset"
            + (", datasets in parallel" if args.parallel else "")
        )
        details["threads"] = args.threads
        figures["budget_cpu_s"] = budget
        figures["model"] = args.model
        # --quick writes its own file: the full figures stay in classify_quality.json
        name = (
            "classify_quality"
            + ("_quick" if args.quick else "")
            + (f"_{args.tag}" if args.tag else "")
        )
        report(name, figures, details)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
