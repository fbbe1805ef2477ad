"""Training health: a local debugger and profiler for every cvpipe run.

- :mod:`~cvpipe.engine.health.collector`: :class:`HealthCollector`, the training callback
  that records ``RUN/health/trace.jsonl`` (cheap, sampled);
- :mod:`~cvpipe.engine.health.rules`: every rule and building them from settings; the
  rules by family: :mod:`~cvpipe.engine.health.loss_rules` (LossNotDecreasing, Overfit,
  Overtraining, InitialLoss), :mod:`~cvpipe.engine.health.tensor_rules`
  (VanishingGradient, ExplodingTensor, PoorWeightInitialization, DeadReLU,
  SaturatedActivation, ClassImbalance, WeightUpdateRatio),
  :mod:`~cvpipe.engine.health.profiler_rules` (StepOutlier, LowGPUUtilization, BatchSize,
  CPUBottleneck, IOBottleneck); what a rule is: :mod:`~cvpipe.engine.health.rule_base`;
- :mod:`~cvpipe.engine.health.report`: ``findings.json`` and ``report.html``;
- :mod:`~cvpipe.engine.health.config`: :class:`HealthConfig` (the ``health`` section).

Names are imported lazily so that reading a config does not load torch.

Example:
    >>> from cvpipe.engine.health import analyse_run
    >>> analyse_run("runs/a").fired  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from cvpipe.engine.health.config import HealthConfig

__all__ = ["HealthCollector", "HealthConfig", "RULES", "Trace", "analyse_run", "evaluate_rules"]

_LAZY = {
    "HealthCollector": "cvpipe.engine.health.collector",
    "RULES": "cvpipe.engine.health.rules",
    "evaluate_rules": "cvpipe.engine.health.rules",
    "Trace": "cvpipe.engine.health.trace",
    "analyse_run": "cvpipe.engine.health.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cvpipe.engine.health' has no attribute {name!r}")
