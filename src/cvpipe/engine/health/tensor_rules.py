"""Health rules on sampled tensors: ExplodingTensor, VanishingGradient, WeightUpdateRatio,
PoorWeightInitialization, DeadReLU, SaturatedActivation, and ClassImbalance.

They read the sampled steps of a :class:`~cvpipe.engine.health.trace.Trace` (gradient,
weight, update and activation statistics per parameter group or layer; the labels seen);
most also check each sample during training (:meth:`~cvpipe.engine.health.rule_base.Rule.check_sample`),
so ``stop`` and ``save`` actions act at the step. Settings: :mod:`cvpipe.engine.health.rules`.

Example:
    >>> ExplodingTensor().action
    'warn'
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cvpipe.engine.health.rule_base import (
    Hit,
    PerSampleRule,
    Rule,
    group_values,
    layer_types,
    register,
)
from cvpipe.engine.health.trace import Trace


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
            for g, v in group_values(sample, key).items():
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
class VanishingGradient(PerSampleRule):
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
        norms = {g: v for g, v in group_values(sample, "grad").items() if math.isfinite(v)}
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
        ratios = [v for v in group_values(sample, "update").values() if math.isfinite(v)]
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
        types = layer_types(trace)
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
class DeadReLU(PerSampleRule):
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
        types = layer_types(trace)
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
class SaturatedActivation(PerSampleRule):
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
