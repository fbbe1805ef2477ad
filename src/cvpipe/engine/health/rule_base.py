"""What a training-health rule is: :class:`Rule`, its verdict :class:`Finding`, the registry.

A rule reads a :class:`~cvpipe.engine.health.trace.Trace` and says how often, and where,
a known training problem showed. The built-in rules live by family
(:mod:`~cvpipe.engine.health.loss_rules`, :mod:`~cvpipe.engine.health.tensor_rules`,
:mod:`~cvpipe.engine.health.profiler_rules`) and register themselves in :data:`RULES`
with :func:`register`; :mod:`cvpipe.engine.health.rules` builds and runs them. The
helpers below (windows, finite values, per-sample rules) are shared by the families.

Example:
    >>> RULES.kind
    'health rule'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from cvpipe.engine.health.trace import Trace
from cvpipe.registry import Registry

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
def finite(a: np.ndarray) -> np.ndarray:
    return a[np.isfinite(a)]


def windows(n: int, size: int) -> list[tuple[int, int]]:
    return [
        (i, min(i + size, n))
        for i in range(0, n, size)
        if min(i + size, n) - i >= max(1, size // 2)
    ]


def auto_window(window: int | None, n: int, share: int, least: int = 5) -> int:
    """``window`` capped at n/share (at least ``least``) so short runs still get windows."""
    auto = max(least, n // share)
    return auto if window is None else max(1, min(int(window), auto))


def layer_types(trace: Trace) -> dict[str, str]:
    return {layer["name"]: layer["type"] for layer in trace.meta.get("layers", [])}


def group_values(sample: dict[str, Any], key: str) -> dict[str, float]:
    return {g: float(v) for g, v in (sample.get(key) or {}).items() if v is not None}


class PerSampleRule(Rule):
    """A rule that is exactly its :meth:`check_sample`, applied to every sampled step."""

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits = [
            (int(s["s"]), f"step {s['s']}: {m}")
            for s in trace.samples
            if (m := self.check_sample(s, trace))
        ]
        return hits, len(trace.samples)
