"""A tiny training driver for health fault injection: tensors in memory, custom modules.

It drives :class:`HealthCollector` through the engine's own loop exactly like the trainer
(``train_one_epoch`` with ``EpochHooks.on_optimizer_step``/``should_stop``,
``evaluate_loss``, epoch rows, ``on_train_end``/``on_train_failed``), in milliseconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from cvpipe.engine.callbacks import CallbackList, TrainState
from cvpipe.engine.health.collector import HealthCollector
from cvpipe.engine.health.config import HealthConfig
from cvpipe.engine.loop import EpochHooks, StepContext, evaluate_loss, train_one_epoch

Batch = tuple[torch.Tensor, torch.Tensor, list[Any]]


def blobs(
    n: int, classes: int = 3, dim: int = 16, seed: int = 0, spread: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable Gaussian blobs: ``n`` points, balanced labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * 2
    y = torch.arange(n) % classes
    return centres[y] + spread * torch.randn(n, dim, generator=g), y


def batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[Batch]:
    return [(x[i : i + size], y[i : i + size], []) for i in range(0, len(x), size)]


class SleepyLoader:
    """Yields ``data`` batches, sleeping ``seconds`` before every ``every``-th one."""

    def __init__(self, data: list[Batch], every: int, seconds: float) -> None:
        self.data, self.every, self.seconds = data, every, seconds

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Batch]:
        for i, b in enumerate(self.data):
            if i % self.every == self.every - 1:
                time.sleep(self.seconds)
            yield b


def mlp(dims: list[int], act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers[:-1])


def run_tiny(
    run_dir: Path,
    model: nn.Module,
    train: Any,
    val: Any,
    *,
    epochs: int = 3,
    lr: float = 1e-2,
    optimizer: str = "adam",
    health: HealthConfig | None = None,
    classes: int = 3,
) -> tuple[HealthCollector, dict[str, dict[str, Any]], TrainState]:
    """Train ``model`` on in-memory batches with a HealthCollector; returns the collector,
    the findings by rule name (from findings.json) and the final state.

    Exceptions of the loop (e.g. TrainingDiverged) propagate after the collector wrote its
    outputs, like the trainer.
    """
    torch.manual_seed(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(model.parameters(), lr=lr)
    cfg = SimpleNamespace(workers=0, batch_size=None)
    spe = len(train)
    state = TrainState(run_dir, cfg, "classify", model, opt, epochs, spe)
    collector = HealthCollector(health or HealthConfig())
    cbs = CallbackList([collector])
    ctx = StepContext(torch.device("cpu"), nn.CrossEntropyLoss())
    cbs.on_train_start(state)
    try:
        for epoch in range(epochs):
            state.epoch = epoch
            hooks = EpochHooks(
                on_optimizer_step=lambda info: cbs.on_optimizer_step(state, info),
                should_stop=lambda: state.stop,
            )
            model.train()
            stats = train_one_epoch(
                model, train, opt, ctx, epoch=epoch, hooks=hooks, steps_before=epoch * spe
            )
            row = {
                "kind": "epoch",
                "epoch": epoch + 1,
                "train.loss": stats["train.loss"],
                **evaluate_loss(model, val, ctx),
            }
            state.history.append(row)
            cbs.on_epoch_end(state, row)
            if state.stop:
                break
        cbs.on_train_end(state)
    except BaseException as exc:
        cbs.on_train_failed(state, exc)
        raise
    return collector, findings(run_dir), state


def findings(run_dir: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((run_dir / "health" / "findings.json").read_text())
    return {r["rule"]: r for r in data["rules"]}


def fired(run_dir: Path) -> set[str]:
    return {k for k, v in findings(run_dir).items() if v["fired"]}
