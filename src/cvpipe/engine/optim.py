"""Optimizers and learning-rate schedules from a :class:`TrainConfig`.

Schedules step once per optimizer step. ``step``, ``cosine`` and linear warmup are one
:class:`LrSchedule` (a picklable ``LambdaLR`` factor, so scheduler state round-trips
through ``weights_only`` checkpoints); ``onecycle`` is torch's ``OneCycleLR``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Any

import torch

from cvpipe.engine.config import OptimizerConfig, SchedulerConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig
) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov), Adam or AdamW with weight decay."""
    params = list(params)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


class LrSchedule:
    """LR factor at optimizer step ``t``: warmup ramp × (step decay | cosine | 1).

    Args:
        cfg: scheduler settings.
        steps_per_epoch: optimizer steps per epoch.
        epochs: planned epochs.
        base_lr: the optimizer's lr (for ``min_lr``).
    """

    def __init__(
        self, cfg: SchedulerConfig, steps_per_epoch: int, epochs: int, base_lr: float
    ) -> None:
        self.name = cfg.name
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total = self.steps_per_epoch * epochs
        self.warmup = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        self.warmup_start = cfg.warmup_start
        self.milestones = sorted(cfg.milestones)
        self.gamma = cfg.gamma
        self.floor = min(cfg.min_lr / base_lr, 1.0)

    def __call__(self, t: int) -> float:
        factor = 1.0
        if self.name == "step":
            epoch = t // self.steps_per_epoch
            factor = self.gamma ** bisect.bisect_right(self.milestones, epoch)
        elif self.name == "cosine":
            span = max(1, self.total - self.warmup)
            progress = min(max(t - self.warmup, 0) / span, 1.0)
            factor = self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if self.warmup and t < self.warmup:
            factor *= self.warmup_start + (1 - self.warmup_start) * t / self.warmup
        return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, steps_per_epoch: int, epochs: int
) -> Any:
    """The per-step scheduler, or None for a constant learning rate without warmup."""
    if cfg.name == "onecycle":
        lrs = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=lrs,
            total_steps=max(1, steps_per_epoch * epochs),
            pct_start=cfg.pct_start,
        )
    if cfg.name == "none" and cfg.warmup_epochs == 0:
        return None
    base_lr = float(optimizer.param_groups[0]["lr"])
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, LrSchedule(cfg, steps_per_epoch, epochs, base_lr)
    )
