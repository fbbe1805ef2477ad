"""Training-health collector overhead: the same training run with the collector at its
default sampling and without it, alternated in one process (same seed, same data).

Writes a synthetic 5-class image set (32 px JPEGs), then trains the ``base_cnn`` baseline
from scratch (``weights=None``, batch 16: short steps, where a collector's per-step cost
shows most) on it, alternating health on / off runs (ABBA...). Training time is the
sum of the epochs' ``time_s`` (train + validation), so the fixed end-of-run cost of
writing findings.json / report.html is reported apart (``finish_s``).

Two figures, because a shared machine's timing noise can exceed the effect measured:
``overhead_pct`` (median of the on/off training-time ratios, minus 1) and
``collector_pct`` (time spent inside the collector's own hooks during the "on" runs,
measured in those same runs, over their training time: immune to the noise between runs).

    python benchmarks/health_overhead.py            # 6 pairs x 3 epochs x 60 steps
    python benchmarks/health_overhead.py --quick    # 3 pairs x 2 epochs x 20 steps
    python benchmarks/health_overhead.py --device cuda
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import parser, report
from PIL import Image

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 230), (230, 210, 40), (200, 40, 200)]


def make_dataset(root: Path, per_class: int, size: int = 32) -> Path:
    from cvpipe.data.manifest import Dataset, DatasetInfo, Record

    rng = np.random.default_rng(0)
    records = []
    for c, colour in enumerate(COLOURS):
        for i in range(per_class):
            arr = np.clip(
                np.array(colour, float) + rng.normal(0, 40, (size, size, 3)), 0, 255
            ).astype(np.uint8)
            rel = f"images/{c}/{i:04d}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / rel, quality=90)
            split = "val" if i % 5 == 0 else "train"
            records.append(
                Record(id=f"{c}_{i}", file=rel, width=size, height=size, split=split, label=c)
            )
    Dataset(
        root,
        DatasetInfo(name="bench", task="classify", classes=[str(c) for c in range(5)]),
        records,
    ).save()
    return root


def timed_collector() -> Any:
    """A HealthCollector (default settings) that adds up the time spent in its own hooks."""
    from cvpipe.engine.health.collector import HealthCollector

    class Timed(HealthCollector):
        spent = 0.0
        finish = 0.0

        def _timed(self, fn: Any, *a: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a)
            finally:
                self.spent += time.perf_counter() - t

        def on_train_start(self, state: Any) -> None:
            self._timed(super().on_train_start, state)

        def on_optimizer_step(self, state: Any, info: Any) -> None:
            self._timed(super().on_optimizer_step, state, info)

        def on_epoch_end(self, state: Any, row: Any) -> None:
            self._timed(super().on_epoch_end, state, row)

        def on_train_end(self, state: Any) -> None:
            t = time.perf_counter()
            super().on_train_end(state)
            self.finish = time.perf_counter() - t

        def _pre_step(self, *a: Any) -> None:
            self._timed(super()._pre_step, *a)

        def _post_step(self, *a: Any) -> None:
            self._timed(super()._post_step, *a)

        def _act_hook(self, name: str, kind: str) -> Any:
            inner = super()._act_hook(name, kind)
            return lambda *a: self._timed(inner, *a)

    return Timed()


def one_run(
    ds: Path, out: Path, epochs: int, health: bool, device: str, workers: int
) -> tuple[float, float, int, Any]:
    from cvpipe.config import load_config
    from cvpipe.engine.config import TrainConfig
    from cvpipe.engine.trainer import train

    values = {
        "model": "base_cnn", "weights": "none", "input_size": 32, "epochs": epochs, "batch_size": 16,
        "workers": workers, "device": device, "seed": 0, "health": {"enabled": False},
    }  # fmt: skip
    cfg = load_config(TrainConfig, values=values)
    collector = timed_collector() if health else None
    t0 = time.perf_counter()
    res = train(ds, out, cfg, callbacks=[collector] if collector else [])
    wall = time.perf_counter() - t0
    train_s = sum(r["time_s"] for r in res.history)
    steps = sum(r["steps"] for r in res.history)
    return train_s, wall, steps, collector


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--workers", type=int, default=0, help="data loader workers (default 0)")
    args = p.parse_args()
    import torch

    if args.device == "cpu":
        torch.set_num_threads(1)  # shared 2-core machines: one intra-op thread is steadier
    pairs, epochs, per_class = (3, 2, 80) if args.quick else (6, 3, 240)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-health-"))
    try:
        ds = make_dataset(work / "ds", per_class)
        one_run(
            ds, work / "warmup", 1, True, args.device, args.workers
        )  # caches, allocator, JIT paths
        on, off, finish, spent = [], [], [], []
        steps = 0
        for i in range(pairs):
            order = (True, False) if i % 2 == 0 else (False, True)
            for health in order:
                out = work / f"run_{i}_{int(health)}"
                train_s, wall, steps, col = one_run(
                    ds, out, epochs, health, args.device, args.workers
                )
                (on if health else off).append(train_s)
                if col is not None:
                    finish.append(col.finish)
                    spent.append(col.spent / train_s)
                print(
                    f"pair {i} health={'on ' if health else 'off'} train {train_s:7.2f} s  wall {wall:7.2f} s",
                    flush=True,
                )
                shutil.rmtree(out, ignore_errors=True)
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        overhead = 100 * (statistics.median(ratios) - 1)
        figures = {
            "overhead_pct": round(overhead, 2),
            "collector_pct": round(100 * statistics.median(spent), 2),
            "train_s_on": round(statistics.median(on), 2),
            "train_s_off": round(statistics.median(off), 2),
            "steps": steps,
        }
        details = {
            "device": args.device, "model": "base_cnn", "input_size": 32, "batch_size": 16, "epochs": epochs,
            "pairs": pairs, "ratios": [round(r, 4) for r in ratios], "on_s": on, "off_s": off,
            "finish_s_median": round(statistics.median(finish), 2), "target_pct": 5.0,
            "health_defaults": json.loads(json.dumps({"sample_every": 50, "early_steps": 5, "system_every_s": 1.0})),
        }  # fmt: skip
        report("health_overhead", figures, details)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
