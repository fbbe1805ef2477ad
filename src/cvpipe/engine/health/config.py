"""``HealthConfig``: the ``health`` section of a training config.

The collector is on by default and cheap: gradients, weights and activations are looked
at on sampled steps only (the first ``early_steps`` steps, then every ``sample_every``);
loss, step time and data wait are recorded every step; CPU/RAM/GPU every
``system_every_s`` seconds.

Rules keep their documented defaults (``cvpipe health --list``, or
:mod:`cvpipe.engine.health.rules`) unless set here, by name::

    health:
      sample_every: 50
      rules:
        StepOutlier: {stddev: 4, n_outliers: 20}
        ExplodingTensor: {action: stop}
        DeadReLU: {action: "off"}

Example:
    >>> cfg = load_config(HealthConfig, overrides=["rules.StepOutlier.stddev=4"])
    >>> cfg.rules["StepOutlier"]["stddev"]
    4
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from cvpipe.config import Config

ACTIONS = ("warn", "stop", "save", "off")


class HealthConfig(Config):
    """Training-health collector and rules.

    Attributes:
        enabled: collect ``RUN/health/`` (trace, findings, report) during training.
        sample_every: look at gradients, weights and activations every N optimizer steps.
        early_steps: also sample each of the first N steps (initialisation checks).
        system_every_s: CPU / RAM / GPU utilisation sampling interval in seconds.
        activations: record activation statistics through forward hooks on sampled steps.
        max_layers: at most this many layers get activation hooks (spread over the model).
        max_groups: parameters are grouped by module; at most this many groups (adjacent
            modules are merged beyond it).
        report: write ``health/report.html`` when training ends: ``on``, ``off`` or
            ``auto`` (on when the steps took at least ``report_min_s`` seconds, so that
            smoke tests skip the plotting; ``cvpipe health RUN`` writes it for any run).
        report_min_s: training time that makes ``report: auto`` write the HTML report.
        rules: rule name → ``{param: value, action: warn|stop|save|off}``; unset
            parameters keep the rule's defaults.
    """

    enabled: bool = True
    sample_every: int = Field(default=50, ge=1)
    early_steps: int = Field(default=5, ge=0)
    system_every_s: float = Field(default=1.0, gt=0)
    activations: bool = True
    max_layers: int = Field(default=24, ge=1)
    max_groups: int = Field(default=12, ge=1)
    report: Literal["auto", "on", "off"] = "auto"
    report_min_s: float = Field(default=20.0, ge=0)
    rules: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from cvpipe.engine.health.rules import check_rule_settings

        out = {}
        for name, settings in v.items():
            check_rule_settings(name, settings)
            out[name] = {
                k: ("off" if k == "action" and x is False else x) for k, x in settings.items()
            }
        return out
