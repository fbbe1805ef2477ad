"""Training-health rules: every built-in rule, and building and running them from settings.

Each rule reads a :class:`~cvpipe.engine.health.trace.Trace` and says how often, and
where, a known training problem showed. What a rule is: :mod:`~cvpipe.engine.health.rule_base`;
the rules by family: :mod:`~cvpipe.engine.health.loss_rules`,
:mod:`~cvpipe.engine.health.tensor_rules`, :mod:`~cvpipe.engine.health.profiler_rules`.

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

from collections.abc import Mapping
from typing import Any

from cvpipe.engine.health.loss_rules import InitialLoss, LossNotDecreasing, Overfit, Overtraining
from cvpipe.engine.health.profiler_rules import (
    BatchSize,
    CPUBottleneck,
    IOBottleneck,
    LowGPUUtilization,
    StepOutlier,
)
from cvpipe.engine.health.rule_base import RULES, Finding, Rule
from cvpipe.engine.health.tensor_rules import (
    ClassImbalance,
    DeadReLU,
    ExplodingTensor,
    PoorWeightInitialization,
    SaturatedActivation,
    VanishingGradient,
    WeightUpdateRatio,
)
from cvpipe.engine.health.trace import Trace
from cvpipe.registry import suggest

#: The built-in rules by family (importing them registered them in :data:`RULES`).
FAMILIES: dict[str, tuple[type[Rule], ...]] = {
    "loss": (
        LossNotDecreasing,
        Overfit,
        Overtraining,
        InitialLoss,
    ),
    "tensor": (
        ExplodingTensor,
        VanishingGradient,
        WeightUpdateRatio,
        PoorWeightInitialization,
        DeadReLU,
        SaturatedActivation,
        ClassImbalance,
    ),
    "profiler": (
        StepOutlier,
        IOBottleneck,
        CPUBottleneck,
        LowGPUUtilization,
        BatchSize,
    ),
}


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
