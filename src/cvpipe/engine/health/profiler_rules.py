"""Health rules on the profile: StepOutlier, IOBottleneck, CPUBottleneck,
LowGPUUtilization and BatchSize.

They read step times, data-wait times and the system samples (CPU, GPU, GPU memory) of a
:class:`~cvpipe.engine.health.trace.Trace`, as the cloud profiler reports of seeds 001
and 002 did. Settings: :mod:`cvpipe.engine.health.rules`.

Example:
    >>> StepOutlier().params["stddev"]
    3.0
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from cvpipe.engine.health.rule_base import (
    Hit,
    Rule,
    auto_window,
    register,
    windows,
)
from cvpipe.engine.health.trace import Trace


def step_outliers(
    times: np.ndarray, stddev: float, min_ratio: float, min_excess_s: float = 0.0
) -> tuple[np.ndarray, float]:
    """Indices of outlier step times and the threshold used.

    The spread is estimated robustly (σ = 1.4826·MAD around the median), so that the
    outliers themselves do not hide; an outlier must also exceed ``min_ratio`` × median
    and the median by at least ``min_excess_s`` seconds (a 2 ms step among 1 ms ones is
    scheduling jitter, not a stall).
    """
    ok = np.isfinite(times)
    if ok.sum() < 3:
        return np.array([], dtype=int), math.inf
    med = float(np.median(times[ok]))
    sigma = 1.4826 * float(np.median(np.abs(times[ok] - med)))
    limit = max(med + stddev * sigma, min_ratio * med, med + min_excess_s)
    return np.flatnonzero(ok & (times > limit)), limit


@register
class StepOutlier(Rule):
    name = "StepOutlier"
    description = (
        "Detects outliers in step duration. The step duration for forward and backward pass "
        "should be roughly the same throughout the training. If there are significant outliers, "
        "it may indicate a system stall or bottleneck issues."
    )
    recommendation = (
        "Check if there are any bottlenecks (CPU, I/O) correlated to the step outliers."
    )
    defaults = {
        "stddev": 3.0, "n_outliers": 10, "min_ratio": 1.5, "min_excess_s": 0.02, "skip_steps": 1,
    }  # fmt: skip
    # a step is an outlier when its time (data wait + compute) exceeds median + stddev·σ
    # (σ robust, from the MAD), min_ratio × median and median + min_excess_s; fires when
    # there are more than n_outliers of them; the first skip_steps steps (warm-up) are
    # ignored.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        rows = [r for r in trace.steps if r["s"] > self.params["skip_steps"]]
        times = Trace.column(rows, "data_s") + Trace.column(rows, "compute_s")
        idx, limit = step_outliers(
            times, self.params["stddev"], self.params["min_ratio"], self.params["min_excess_s"]
        )
        if len(idx) <= self.params["n_outliers"]:
            return [], len(rows)
        hits = [(int(rows[i]["s"]), f"step {rows[i]['s']}: {times[i]:.3g} s (limit {limit:.3g} s; "
                 f"data wait {rows[i].get('data_s', 0):.3g} s)") for i in idx]  # fmt: skip
        return hits, len(rows)


def _cpu_bound(trace: Trace, lo: int, hi: int, cpu_threshold: float) -> bool | None:
    """Whether the process tree used at least ``cpu_threshold`` % of the cores its loader
    can use (workers + 1) between steps lo..hi (None when no system sample falls there)."""
    vals = [
        r["proc_cpu"]
        for r in trace.system
        if lo <= r.get("s", -1) <= hi and r.get("proc_cpu") is not None
    ]
    if not vals:
        return None
    cores = min(int(trace.meta.get("cpu_count") or 1), int(trace.meta.get("workers") or 0) + 1)
    return float(np.mean(vals)) >= cpu_threshold * cores  # proc_cpu: % of one core


class _DataWait(Rule):
    defaults = {"threshold": 0.5, "window": 50, "cpu_threshold": 70.0}
    # windows of `window` steps (short runs: n/5, at least 5) where the loader wait is more
    # than `threshold` of the step time; cpu_threshold (% of the cores the loader can use:
    # workers + 1) tells CPU-bound loading from waiting on storage.
    cpu_bound: ClassVar[bool]

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        rows = trace.steps
        data, comp = Trace.column(rows, "data_s"), Trace.column(rows, "compute_s")
        size = auto_window(self.params["window"], len(rows), 5)
        hits: list[Hit] = []
        wins = windows(len(rows), size)
        for a, b in wins:
            d, c = np.nansum(data[a:b]), np.nansum(comp[a:b])
            share = d / max(d + c, 1e-12)
            if share <= self.params["threshold"]:
                continue
            s0, s1 = int(rows[a]["s"]), int(rows[b - 1]["s"])
            bound = _cpu_bound(trace, s0, s1, self.params["cpu_threshold"])
            if bool(bound) == self.cpu_bound:
                what = (
                    "CPU busy" if bound else ("CPU idle" if bound is not None else "no CPU sample")
                )
                hits.append(
                    (s1, f"steps {s0}-{s1}: {share:.0%} of the time waiting for data ({what})")
                )
        return hits, len(wins)


@register
class IOBottleneck(_DataWait):
    name = "IOBottleneck"
    cpu_bound = False
    description = (
        "Checks whether training waits for data while the CPU is idle (slow storage, network "
        "file systems, a stalled loader)."
    )
    recommendation = (
        "Copy the data to a local disk, pack it ('cvpipe pack'), use more loader workers, or "
        "train on cached features (freeze: frozen)."
    )


@register
class CPUBottleneck(_DataWait):
    name = "CPUBottleneck"
    cpu_bound = True
    description = (
        "Checks whether training waits for data while the loader's CPUs are busy (decoding, "
        "resizing, augmentation)."
    )
    recommendation = (
        "Use more loader workers, decode at reduced size, pack pre-resized images ('cvpipe "
        "pack'), or cache frozen-backbone features."
    )


def _gpu_windows(
    trace: Trace, patience: int, window: int
) -> list[tuple[int, list[dict[str, Any]]]]:
    rows = [r for r in trace.system if r.get("gpu") is not None and r.get("s", 0) > patience]
    return [(int(rows[b - 1].get("s", 0)), rows[a:b]) for a, b in windows(len(rows), window)]


@register
class LowGPUUtilization(Rule):
    name = "LowGPUUtilization"
    description = (
        "Checks if the GPU utilization is low or fluctuating. This can happen due to "
        "bottlenecks, blocking calls for synchronizations, or a small batch size."
    )
    recommendation = (
        "Check if there are bottlenecks, minimize blocking calls, change distributed training "
        "strategy, or increase the batch size."
    )
    defaults = {"threshold_p95": 70.0, "threshold_p5": 10.0, "window": 60, "patience": 100}
    # windows of `window` system samples (about one per second) after the first `patience`
    # steps; fires when the 95th percentile of GPU utilisation is below threshold_p95, or
    # the 5th percentile is below threshold_p5 (fluctuating).

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits: list[Hit] = []
        wins = _gpu_windows(trace, self.params["patience"], self.params["window"])
        for s, rows in wins:
            u = np.array([r["gpu"] for r in rows], dtype=float)
            p95, p5 = float(np.percentile(u, 95)), float(np.percentile(u, 5))
            if p95 < self.params["threshold_p95"]:
                hits.append((s, f"up to step {s}: GPU utilisation p95 {p95:.0f}% (low)"))
            elif p5 < self.params["threshold_p5"]:
                hits.append((s, f"up to step {s}: GPU utilisation p5 {p5:.0f}% (fluctuating)"))
        return hits, sum(len(r) for _, r in wins)


@register
class BatchSize(Rule):
    name = "BatchSize"
    description = (
        "Checks if GPUs are underutilized because the batch size is too small. To detect this "
        "problem, the rule analyzes the average GPU memory footprint, the CPU and the GPU "
        "utilization."
    )
    recommendation = (
        "The batch size is too small, and GPUs are underutilized. Consider running on a "
        "smaller instance type or increasing the batch size."
    )
    defaults = {
        "cpu_threshold_p95": 70.0, "gpu_threshold_p95": 70.0, "gpu_memory_threshold_p95": 70.0,
        "window": 60, "patience": 100,
    }  # fmt: skip
    # fires on each window (as LowGPUUtilization) where the 95th percentiles of CPU, GPU
    # and GPU memory use are all below their thresholds.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits: list[Hit] = []
        wins = _gpu_windows(trace, self.params["patience"], self.params["window"])
        for s, rows in wins:
            p = {
                k: float(np.percentile([r.get(k) or 0.0 for r in rows], 95))
                for k in ("cpu", "gpu", "gpu_mem")
            }
            if (
                p["cpu"] < self.params["cpu_threshold_p95"]
                and p["gpu"] < self.params["gpu_threshold_p95"]
                and p["gpu_mem"] < self.params["gpu_memory_threshold_p95"]
            ):
                hits.append((s, f"up to step {s}: p95 CPU {p['cpu']:.0f}%, GPU {p['gpu']:.0f}%, "
                             f"GPU memory {p['gpu_mem']:.0f}%"))  # fmt: skip
        return hits, sum(len(r) for _, r in wins)
