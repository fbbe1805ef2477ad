"""Training-health rules: each reads a :class:`~cvpipe.engine.health.trace.Trace` and says
how often, and where, a known training problem showed.

Names follow the cloud debugger/profiler reports of seeds 001 and 002 (LowGPUUtilization,
BatchSize, StepOutlier, Overtraining, PoorWeightInitialization...). Every rule documents
its parameters and defaults in ``defaults``; ``health.rules.NAME.PARAM`` overrides them,
``health.rules.NAME.action`` picks what happens when it fires during training:

- ``warn`` (default): a warning in the log and the report;
- ``stop``: a clean stop (checkpoint written, ``stop_reason`` set);
- ``save``: the offending tensors are written to ``RUN/health/snapshots/*.pt``;
- ``off``: the rule is not evaluated.

Example:
    >>> rule = create_rule("StepOutlier", {"stddev": 4})
    >>> rule.params["stddev"], rule.params["n_outliers"]
    (4, 10)
    >>> findings = evaluate_rules(Trace.read("runs/a/health/trace.jsonl"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from cvpipe.engine.health.trace import Trace
from cvpipe.registry import Registry, suggest

MAX_EXAMPLES = 5
Hit = tuple[int, str]


@dataclass
class Finding:
    """One rule's verdict on a trace (a row of the rules table).

    Attributes:
        rule / description / recommendation: what the rule checks and what to do.
        triggered: how many times it fired (steps, samples, windows or epochs).
        datapoints: how many data points it looked at.
        parameters: the parameters it ran with.
        action: ``warn`` | ``stop`` | ``save``.
        steps: global steps (epochs for epoch rules) where it fired, first 100.
        messages: the first few explanations.
    """

    rule: str
    description: str
    recommendation: str
    triggered: int
    datapoints: int
    parameters: dict[str, Any]
    action: str
    steps: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return self.triggered > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "fired": self.fired, "triggered": self.triggered,
            "datapoints": self.datapoints, "action": self.action, "parameters": self.parameters,
            "description": self.description, "recommendation": self.recommendation,
            "steps": self.steps, "messages": self.messages,
        }  # fmt: skip


class Rule:
    """Base of every rule: subclasses set the class attributes and implement :meth:`check`.

    Args:
        params: overrides of ``defaults`` (unknown names are errors).
        action: ``warn`` | ``stop`` | ``save`` (default: ``default_action``).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    recommendation: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    default_action: ClassVar[str] = "warn"

    def __init__(self, params: Mapping[str, Any] | None = None, action: str | None = None) -> None:
        self.params = {**self.defaults, **(params or {})}
        self.action = action or self.default_action

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        """Return (hits as ``(step, message)``, data points looked at)."""
        raise NotImplementedError

    def check_sample(self, sample: dict[str, Any], trace: Trace) -> str | None:
        """Instant check of one sampled step during training (None = fine)."""
        return None

    def evaluate(self, trace: Trace) -> Finding:
        """Run the rule on ``trace``."""
        hits, n = self.check(trace)
        return Finding(
            self.name, self.description, self.recommendation, len(hits), n, dict(self.params),
            self.action, [s for s, _ in hits[:100]], [m for _, m in hits[:MAX_EXAMPLES]],
        )  # fmt: skip


RULES: Registry[type[Rule]] = Registry("health rule")


def register(cls: type[Rule]) -> type[Rule]:
    RULES.add(cls.name, cls)
    return cls


# ------------------------------------------------------------------------- helpers
def _finite(a: np.ndarray) -> np.ndarray:
    return a[np.isfinite(a)]


def _windows(n: int, size: int) -> list[tuple[int, int]]:
    return [
        (i, min(i + size, n))
        for i in range(0, n, size)
        if min(i + size, n) - i >= max(1, size // 2)
    ]


def _auto(window: int | None, n: int, share: int, least: int = 5) -> int:
    """``window`` capped at n/share (at least ``least``) so short runs still get windows."""
    auto = max(least, n // share)
    return auto if window is None else max(1, min(int(window), auto))


def _layer_types(trace: Trace) -> dict[str, str]:
    return {layer["name"]: layer["type"] for layer in trace.meta.get("layers", [])}


def _groups(sample: dict[str, Any], key: str) -> dict[str, float]:
    return {g: float(v) for g, v in (sample.get(key) or {}).items() if v is not None}


class _PerSample(Rule):
    """A rule that is exactly its :meth:`check_sample`, applied to every sampled step."""

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits = [
            (int(s["s"]), f"step {s['s']}: {m}")
            for s in trace.samples
            if (m := self.check_sample(s, trace))
        ]
        return hits, len(trace.samples)


# ------------------------------------------------------------------------- loss rules
@register
class LossNotDecreasing(Rule):
    name = "LossNotDecreasing"
    description = (
        "Checks that the training loss keeps going down: the mean loss of each window of "
        "steps is compared with the best window so far."
    )
    recommendation = (
        "Check the labels (do they depend on the image?), raise or lower the learning rate, "
        "check that the right parameters are trainable and that inputs are normalised."
    )
    defaults = {
        "window": None,
        "min_delta_pct": 1.0,
        "patience": 3,
        "min_loss": 0.02,
        "skip_steps": 0,
    }
    # window: steps per window (None = 10% of the steps, at least 5);
    # min_delta_pct: improvement on the best window that counts, in percent;
    # patience: windows in a row without improvement before it fires;
    # min_loss: a loss already below this is converged, not stuck.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        rows = [r for r in trace.steps if r["s"] > self.params["skip_steps"]]
        loss = Trace.column(rows, "loss")
        size = _auto(self.params["window"], len(loss), 10)
        hits: list[Hit] = []
        best, bad = math.inf, 0
        for a, b in _windows(len(loss), size):
            vals = _finite(loss[a:b])
            if not len(vals):
                continue
            m = float(vals.mean())
            if m < best * (1 - self.params["min_delta_pct"] / 100):
                best, bad = m, 0
                continue
            bad += 1
            if bad >= self.params["patience"] and m > self.params["min_loss"]:
                hits.append((int(rows[b - 1]["s"]), f"mean loss {m:.4g} over steps {rows[a]['s']}-{rows[b - 1]['s']} "
                             f"is no better than the best window ({best:.4g}) for {bad} windows"))  # fmt: skip
        return hits, len(loss)


@register
class Overfit(Rule):
    name = "Overfit"
    description = (
        "Checks whether validation loss pulls away from training loss (the model memorises "
        "the training set)."
    )
    recommendation = (
        "Add data or augmentation, regularise (dropout, weight decay, label smoothing), use a "
        "smaller model or freeze more layers, stop earlier (early_stopping.patience)."
    )
    defaults = {"ratio": 1.5, "min_gap": 0.2, "patience": 2, "start_epoch": 1}
    # fires on each epoch where val.loss > ratio * train.loss and val.loss - train.loss > min_gap
    # held for `patience` epochs in a row, from `start_epoch` on.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits: list[Hit] = []
        bad, n = 0, 0
        for r in trace.epochs:
            tr, va = r.get("train.loss"), r.get("val.loss")
            if tr is None or va is None or not (math.isfinite(tr) and math.isfinite(va)):
                continue
            if r["epoch"] < self.params["start_epoch"]:
                continue
            n += 1
            if va > self.params["ratio"] * tr and va - tr > self.params["min_gap"]:
                bad += 1
                if bad >= self.params["patience"]:
                    hits.append(
                        (
                            int(r["epoch"]),
                            f"epoch {r['epoch']}: val.loss {va:.4g} vs train.loss {tr:.4g}",
                        )
                    )
            else:
                bad = 0
        return hits, n


@register
class Overtraining(Rule):
    name = "Overtraining"
    description = "Checks whether the validation loss stopped improving while training goes on."
    recommendation = (
        "Use early stopping (early_stopping.patience), fewer epochs or a decaying learning "
        "rate; best.pt keeps the best epoch."
    )
    defaults = {"patience": 3, "min_delta": 0.0, "metric": "val.loss"}
    # fires on each epoch that comes `patience` or more epochs after the best value of
    # `metric` (lower is better) improved by more than `min_delta`.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits: list[Hit] = []
        best, best_epoch, n = math.inf, 0, 0
        for r in trace.epochs:
            v = r.get(self.params["metric"])
            if v is None or not math.isfinite(v):
                continue
            n += 1
            if v < best - self.params["min_delta"]:
                best, best_epoch = v, int(r["epoch"])
            elif int(r["epoch"]) - best_epoch >= self.params["patience"]:
                hits.append((int(r["epoch"]), f"epoch {r['epoch']}: {self.params['metric']} {v:.4g}, "
                             f"best {best:.4g} at epoch {best_epoch}"))  # fmt: skip
        return hits, n


@register
class InitialLoss(Rule):
    name = "InitialLoss"
    description = "Checks that the first step's loss is close to ln(C) for C balanced classes (classification and counting)."
    recommendation = (
        "A far-off first loss means a bad initialisation of the head (large weights or "
        "biases), unnormalised inputs, or labels that do not match the classes."
    )
    defaults = {"tolerance": 0.5}
    # fires when loss(step 1) is outside ln(C) * (1 ± tolerance).

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        c = int(trace.meta.get("classes") or 0)
        first = next((r for r in trace.steps if r["s"] == 1), None)
        if trace.meta.get("task") == "detect":  # detection losses have no ln(C) baseline
            return [], 0
        if c < 2 or first is None or first.get("loss") is None:
            return [], 0
        expected, loss = math.log(c), float(first["loss"])
        tol = self.params["tolerance"]
        if not math.isfinite(loss) or abs(loss - expected) > tol * expected:
            return [(1, f"first loss {loss:.4g}, expected about ln({c}) = {expected:.4g}")], 1
        return [], 1


# ------------------------------------------------------------------------- tensor rules
@register
class ExplodingTensor(Rule):
    name = "ExplodingTensor"
    description = (
        "Checks losses, gradients, weights and activations for NaN/Inf or absurdly large norms."
    )
    recommendation = (
        "Lower the learning rate, add grad_clip, check inputs for NaN, use bf16 rather than "
        "fp16 autocast, warm the learning rate up."
    )
    defaults = {"max_norm": 1e8}
    # fires on each sampled step with a non-finite value or a gradient/weight norm above
    # max_norm, on non-finite step losses, and when the run diverged.

    def check_sample(self, sample: dict[str, Any], trace: Trace) -> str | None:
        for key in ("grad", "weight", "update"):
            for g, v in _groups(sample, key).items():
                if not math.isfinite(v):
                    return f"{key} of {g} is {v}"
                if key != "update" and v > self.params["max_norm"]:
                    return f"{key} norm of {g} is {v:.3g} (> {self.params['max_norm']:.3g})"
        for layer, st in (sample.get("act") or {}).items():
            for k in ("mean", "std"):
                v = st.get(k)
                if v is not None and not math.isfinite(v):
                    return f"activation {k} of {layer} is {v}"
        return None

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits: list[Hit] = []
        for r in trace.steps:
            if r.get("loss") is not None and not math.isfinite(r["loss"]):
                hits.append((int(r["s"]), f"step {r['s']}: loss {r['loss']}"))
        for smp in trace.samples:
            msg = self.check_sample(smp, trace)
            if msg:
                hits.append((int(smp["s"]), f"step {smp['s']}: {msg}"))
        for ev in trace.events:
            if ev.get("what") == "diverged":
                hits.append((int(ev.get("s", 0)), f"step {ev.get('s')}: {ev.get('message')}"))
        hits.sort()
        return hits, len(trace.steps) + len(trace.samples)


@register
class VanishingGradient(_PerSample):
    name = "VanishingGradient"
    description = (
        "Checks whether gradients become tiny, overall or in early layers compared with late "
        "ones (deep stacks of saturating activations)."
    )
    recommendation = (
        "Use ReLU-family activations, normalisation layers (BatchNorm) or residual "
        "connections, a better initialisation, or a higher learning rate."
    )
    defaults = {"threshold": 1e-7, "ratio": 1e-5}
    # fires on each sampled step where the largest group gradient norm is below `threshold`,
    # or the smallest is below `ratio` times the largest.

    def check_sample(self, sample: dict[str, Any], trace: Trace) -> str | None:
        norms = {g: v for g, v in _groups(sample, "grad").items() if math.isfinite(v)}
        if not norms:
            return None
        hi_g, hi = max(norms.items(), key=lambda kv: kv[1])
        lo_g, lo = min(norms.items(), key=lambda kv: kv[1])
        if hi < self.params["threshold"]:
            return f"largest gradient norm {hi:.3g} ({hi_g}) < {self.params['threshold']:.3g}"
        if len(norms) > 1 and lo < self.params["ratio"] * hi:
            return f"gradient norm of {lo_g} is {lo:.3g}, {lo / hi:.2g} of {hi_g}'s {hi:.3g}"
        return None


@register
class WeightUpdateRatio(Rule):
    name = "WeightUpdateRatio"
    description = (
        "Checks the size of each optimizer update relative to the weights (‖Δw‖/‖w‖, median "
        "over parameter groups; about 1e-3 is typical)."
    )
    recommendation = (
        "Too large: lower the learning rate or warm it up. Too small: raise it, or check that "
        "the parameters meant to train are not frozen."
    )
    defaults = {"min_ratio": 1e-6, "max_ratio": 0.25}

    def check_sample(self, sample: dict[str, Any], trace: Trace) -> str | None:
        ratios = [v for v in _groups(sample, "update").values() if math.isfinite(v)]
        if not ratios:
            return None
        med = float(np.median(ratios))
        if med < self.params["min_ratio"]:
            return f"median update/weight ratio {med:.3g} < {self.params['min_ratio']:.3g}"
        if med > self.params["max_ratio"]:
            return f"median update/weight ratio {med:.3g} > {self.params['max_ratio']:.3g}"
        return None

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        samples = [s for s in trace.samples if s.get("update")]
        hits = [
            (int(s["s"]), f"step {s['s']}: {m}")
            for s in samples
            if (m := self.check_sample(s, trace))
        ]
        return hits, len(samples)


@register
class PoorWeightInitialization(Rule):
    name = "PoorWeightInitialization"
    description = (
        "Checks, over the first steps, that the spread of activations of the linear and "
        "convolution layers stays commensurate across layers (neither collapsing nor exploding)."
    )
    recommendation = (
        "Use the framework's default or Kaiming/Xavier initialisation, load pretrained "
        "weights, or add normalisation layers."
    )
    defaults = {"steps": 10, "threshold": 100.0, "min_std": 1e-3, "max_std": 1e3}
    # fires on each sampled step within the first `steps` where max/min activation std over
    # linear/conv layers exceeds `threshold`, or a layer's std is below min_std / above max_std.

    def check_sample(self, sample: dict[str, Any], trace: Trace) -> str | None:
        types = _layer_types(trace)
        stds = {
            name: float(st["std"])
            for name, st in (sample.get("act") or {}).items()
            if types.get(name, st.get("type", "")) in ("linear", "conv")
            and st.get("std") is not None
        }
        if len(stds) < 2:
            return None
        if any(not math.isfinite(v) for v in stds.values()):
            return "non-finite activation std"
        lo_n, lo = min(stds.items(), key=lambda kv: kv[1])
        hi_n, hi = max(stds.items(), key=lambda kv: kv[1])
        if lo < self.params["min_std"]:
            return f"activations of {lo_n} collapsed (std {lo:.3g} < {self.params['min_std']:.3g})"
        if hi > self.params["max_std"]:
            return f"activations of {hi_n} exploded (std {hi:.3g} > {self.params['max_std']:.3g})"
        if hi / lo > self.params["threshold"]:
            return f"activation std ranges from {lo:.3g} ({lo_n}) to {hi:.3g} ({hi_n}), ratio {hi / lo:.3g}"
        return None

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        early = [s for s in trace.samples if s["s"] <= self.params["steps"] and s.get("act")]
        hits = [
            (int(s["s"]), f"step {s['s']}: {m}")
            for s in early
            if (m := self.check_sample(s, trace))
        ]
        return hits, len(early)


@register
class DeadReLU(_PerSample):
    name = "DeadReLU"
    description = "Checks for ReLU layers whose outputs are (almost) all zero."
    recommendation = (
        "Lower the learning rate, use LeakyReLU/GELU, check the initialisation and the "
        "input normalisation."
    )
    defaults = {"zero_fraction": 0.99, "layer_fraction": 0.5}
    # a ReLU layer is dead when at least zero_fraction of its outputs are 0; fires on each
    # sampled step where at least layer_fraction of the hooked ReLU layers are dead.

    def check_sample(self, sample: dict[str, Any], trace: Trace) -> str | None:
        types = _layer_types(trace)
        relus = {
            n: st
            for n, st in (sample.get("act") or {}).items()
            if types.get(n, st.get("type")) == "relu"
        }
        if not relus:
            return None
        dead = [
            n for n, st in relus.items() if (st.get("zero") or 0.0) >= self.params["zero_fraction"]
        ]
        if dead and len(dead) / len(relus) >= self.params["layer_fraction"]:
            return f"{len(dead)} of {len(relus)} ReLU layers dead ({', '.join(dead[:4])})"
        return None


@register
class SaturatedActivation(_PerSample):
    name = "SaturatedActivation"
    description = (
        "Checks sigmoid and tanh layers for saturation (outputs pinned near their limits, "
        "where the gradient vanishes)."
    )
    recommendation = "Use ReLU-family activations, normalise inputs, lower the learning rate."
    defaults = {"saturated_fraction": 0.5}
    # fires on each sampled step where a sigmoid/tanh layer has at least saturated_fraction
    # of its outputs saturated (sigmoid < 0.03 or > 0.97, |tanh| > 0.97).

    def check_sample(self, sample: dict[str, Any], trace: Trace) -> str | None:
        for n, st in (sample.get("act") or {}).items():
            sat = st.get("sat")
            if sat is not None and sat >= self.params["saturated_fraction"]:
                return f"{n}: {sat:.0%} of outputs saturated"
        return None


@register
class ClassImbalance(Rule):
    name = "ClassImbalance"
    description = "Checks the class balance of the training split."
    recommendation = (
        "Balance the data ('cvpipe balance'), use class_weights: auto or sampler: weighted, "
        "and read per-class metrics rather than accuracy."
    )
    defaults = {"threshold": 10.0}
    # fires when the largest class has more than `threshold` times the images of the
    # smallest, or a class has none.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        counts = trace.meta.get("class_counts") or []
        names = trace.meta.get("class_names") or [str(i) for i in range(len(counts))]
        if len(counts) < 2:
            return [], len(counts)
        lo, hi = min(counts), max(counts)
        if lo == 0:
            empty = [names[i] for i, c in enumerate(counts) if c == 0]
            return [(0, f"no training images for class(es) {', '.join(empty[:5])}")], len(counts)
        if hi / lo > self.params["threshold"]:
            return [(0, f"largest class {names[counts.index(hi)]} has {hi} images, smallest "
                     f"{names[counts.index(lo)]} {lo} (ratio {hi / lo:.1f})")], len(counts)  # fmt: skip
        return [], len(counts)


# ------------------------------------------------------------------------- profiler rules
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
        size = _auto(self.params["window"], len(rows), 5)
        hits: list[Hit] = []
        wins = _windows(len(rows), size)
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
    return [(int(rows[b - 1].get("s", 0)), rows[a:b]) for a, b in _windows(len(rows), window)]


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


# ------------------------------------------------------------------------- registry use
def check_rule_settings(name: str, settings: Mapping[str, Any]) -> None:
    """Validate one ``health.rules.NAME`` entry.

    Raises:
        ValueError: unknown rule (with suggestions), unknown parameter (with the valid
            ones), a value of the wrong type, or an unknown action.
    """
    if name not in RULES:
        raise ValueError(
            f"unknown health rule {name!r}; {suggest(name, RULES.names())}valid: {', '.join(RULES.names())}"
        )
    if not isinstance(settings, Mapping):
        raise ValueError(f"health rule {name}: expected a mapping of parameters, got {settings!r}")
    cls = RULES.get(name)
    for key, value in settings.items():
        if key == "action":
            if value is False:  # YAML reads a bare off as false
                continue
            if value not in ("warn", "stop", "save", "off"):
                raise ValueError(
                    f"health rule {name}: action {value!r}; use warn, stop, save or off"
                )
            continue
        if key not in cls.defaults:
            valid = ", ".join([*cls.defaults, "action"])
            raise ValueError(
                f"health rule {name}: unknown parameter {key!r}; {suggest(key, list(cls.defaults))}valid: {valid}"
            )
        default = cls.defaults[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = (
            value is None
            and key == "window"
            or (
                numeric
                if isinstance(default, (int, float)) or default is None
                else isinstance(value, type(default))
            )
        )
        if not ok:
            raise ValueError(f"health rule {name}: {key} must be like {default!r} (got {value!r})")


def create_rule(name: str, settings: Mapping[str, Any] | None = None) -> Rule:
    """Build rule ``name`` with ``settings`` (parameters and optional ``action``).

    Raises:
        ValueError: see :func:`check_rule_settings`.
    """
    settings = dict(settings or {})
    check_rule_settings(name, settings)
    action = settings.pop("action", None)
    action = "off" if action is False else action
    return RULES.get(name)(settings, action)


def build_rules(settings: Mapping[str, Mapping[str, Any]] | None = None) -> list[Rule]:
    """Every registered rule, with ``settings`` applied; rules set to ``off`` are left out."""
    settings = settings or {}
    return [
        create_rule(n, settings.get(n))
        for n in RULES.names()
        if (settings.get(n) or {}).get("action") not in ("off", False)
    ]


def evaluate_rules(
    trace: Trace, settings: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Finding]:
    """Run every enabled rule on ``trace``; fired rules first, then by name."""
    found = [r.evaluate(trace) for r in build_rules(settings)]
    return sorted(found, key=lambda f: (not f.fired, f.rule))
