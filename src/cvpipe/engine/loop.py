"""The training and validation loops, as plain functions.

The loops know nothing about tasks: a *step function* turns one batch into a loss (and
how many items it held and got right). :func:`classification_step` serves classify and
count; detection plugs in its own step function later without touching the loops.

Batches are ``(inputs, targets, skipped)`` triples (:func:`cvpipe.data.datasets.collate_skip`);
``inputs`` may be images or cached backbone features.

Example:
    >>> ctx = StepContext(device=torch.device("cpu"), criterion=nn.CrossEntropyLoss())
    >>> stats = train_one_epoch(model, loader, optimizer, ctx, epoch=0)  # doctest: +SKIP
    >>> stats["train.loss"], stats["img_per_s"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cvpipe.errors import TrainingDiverged
from cvpipe.progress import Bar


@dataclass
class StepOutput:
    """One batch's result: mean ``loss`` (a graph-attached scalar), item count, correct.

    ``parts`` optionally names the terms the loss sums (detection: ``classification``,
    ``bbox_regression``...); the epoch reports each as ``train.loss.<part>``.
    """

    loss: torch.Tensor
    n: int
    correct: int
    parts: dict[str, float] | None = None


@dataclass
class StepContext:
    """Everything a step function needs besides the model and the batch.

    Attributes:
        device: where to compute.
        criterion: training loss module.
        amp_dtype: autocast dtype (``torch.bfloat16`` / ``torch.float16``) or None.
        channels_last: convert 4-D inputs to channels_last memory format.
    """

    device: torch.device
    criterion: nn.Module
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        non_blocking = self.device.type == "cuda"
        if self.channels_last and x.dim() == 4:
            return x.to(self.device, non_blocking=non_blocking, memory_format=torch.channels_last)
        return x.to(self.device, non_blocking=non_blocking)


StepFn = Callable[[nn.Module, Any, StepContext], StepOutput]
Reducer = Callable[[list[float]], list[float]]


def classification_step(model: nn.Module, batch: Any, ctx: StepContext) -> StepOutput:
    """Cross-entropy step for classify/count: ``inputs [N,...] → logits [N,C]``."""
    x, y = ctx.to_device(batch[0]), batch[1].to(ctx.device, non_blocking=ctx.device.type == "cuda")
    with ctx.autocast():
        logits = model(x)
    loss = ctx.criterion(logits.float(), y)
    correct = int((logits.argmax(1) == y).sum().item())
    return StepOutput(loss, int(y.shape[0]), correct)


def _batch_size(batch: Any) -> int:
    return len(batch[1])  # a target tensor (classify/count) or a list of dicts (detect)


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


@dataclass
class EpochHooks:
    """Optional per-epoch hooks of :func:`train_one_epoch`.

    Attributes:
        on_step: called with each step row (metrics.jsonl) every ``log_every`` steps.
        on_skipped: called with the :class:`~cvpipe.data.datasets.Skipped` markers of a batch.
        reduce: sums a list of floats over processes (DDP); identity when None.
        bar: a progress bar advanced by images.
        log_every: step-row interval in optimizer steps.
        on_optimizer_step: called after *every* optimizer step with ``global_step``,
            ``epoch`` (0-based), ``loss`` (mean over the step's items), ``n``, ``lr``,
            ``data_s`` (time spent waiting for the loader) and ``compute_s`` (forward,
            backward and optimizer); keep it cheap (the health collector uses it).
        should_stop: polled after every optimizer step; True ends the epoch there
            (single-process runs only: under DDP every rank must take the same steps).
    """

    on_step: Callable[[dict[str, Any]], None] | None = None
    on_skipped: Callable[[list[Any]], None] | None = None
    reduce: Reducer | None = None
    bar: Bar | None = None
    log_every: int = 1
    on_optimizer_step: Callable[[dict[str, Any]], None] | None = None
    should_stop: Callable[[], bool] | None = None


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    ctx: StepContext,
    *,
    epoch: int,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    accumulate: int = 1,
    grad_clip: float | None = None,
    step_fn: StepFn = classification_step,
    hooks: EpochHooks | None = None,
    steps_before: int = 0,
) -> dict[str, Any]:
    """Train ``model`` for one pass over ``loader``.

    Args:
        model: the module being trained (possibly DDP-wrapped), in train mode.
        loader: yields ``(inputs, targets, skipped)`` batches.
        optimizer: the optimizer; ``scheduler`` (optional) is stepped per optimizer step.
        ctx: device, criterion, autocast, memory format.
        epoch: 0-based epoch (for messages and rows).
        scaler: fp16 gradient scaler, or None.
        accumulate: micro-batches per optimizer step.
        grad_clip: clip the global gradient norm to this value.
        step_fn: task step function.
        hooks: row/skip/reduce/progress hooks.
        steps_before: optimizer steps taken before this epoch (for ``global_step``).

    Returns:
        ``{"train.loss", "train.accuracy", "images", "skipped", "steps", "time_s", "img_per_s"}``
        plus ``"train.loss.<part>"`` for each part the step function reports.

    Raises:
        TrainingDiverged: the loss became NaN or infinite (epoch, step and loss named).
    """
    hooks = hooks or EpochHooks()
    loss_sum, correct, seen, skipped, steps, micro = 0.0, 0, 0, 0, 0, 0
    window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    pending = False
    step_loss, step_n, data_s, compute_s = 0.0, 0, 0.0, 0.0
    part_sums: dict[str, float] = {}
    t_mark = time.perf_counter()  # when this loop last finished its own work
    for batch in loader:
        t_got = time.perf_counter()
        data_s += t_got - t_mark  # an empty batch's time counts as data wait too
        if batch[2] and hooks.on_skipped:
            hooks.on_skipped(batch[2])
        skipped += len(batch[2])
        if _batch_size(batch) == 0:
            continue
        micro += 1
        last_micro = micro % accumulate == 0
        no_sync = getattr(model, "no_sync", None)  # DDP: skip the all-reduce between micro-steps
        sync = contextlib.nullcontext() if last_micro or no_sync is None else no_sync()
        with sync:
            out = step_fn(model, batch, ctx)
            loss_value = float(out.loss.detach().item())
            if not math.isfinite(loss_value):
                raise TrainingDiverged(
                    f"loss became {loss_value} at epoch {epoch + 1}, step {steps + 1} "
                    f"(global step {steps_before + steps + 1}); the last good checkpoint is kept. "
                    "Lower optimizer.lr, add grad_clip, or check the inputs for NaN"
                )
            scaled = out.loss / accumulate
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        pending = True
        loss_sum += loss_value * out.n
        correct += out.correct
        seen += out.n
        for key, value in (out.parts or {}).items():
            part_sums[key] = part_sums.get(key, 0.0) + value * out.n
        window_loss += loss_value * out.n
        window_n += out.n
        step_loss += loss_value * out.n
        step_n += out.n
        if hooks.bar is not None:
            hooks.bar.update(out.n)
        if last_micro:
            _optimizer_step(model, optimizer, scheduler, scaler, grad_clip)
            pending = False
            steps += 1
            compute_s += time.perf_counter() - t_got
            if hooks.on_optimizer_step is not None:
                hooks.on_optimizer_step(
                    {
                        "global_step": steps_before + steps, "epoch": epoch,
                        "loss": step_loss / max(step_n, 1), "n": step_n, "lr": _lr(optimizer),
                        "data_s": data_s, "compute_s": compute_s,
                    }
                )  # fmt: skip
            step_loss, step_n, data_s, compute_s = 0.0, 0, 0.0, 0.0
            if hooks.on_step is not None and steps % hooks.log_every == 0:
                now = time.perf_counter()
                row = {
                    "kind": "step",
                    "epoch": epoch,
                    "step": steps,
                    "global_step": steps_before + steps,
                    "loss": window_loss / max(window_n, 1),
                    "lr": _lr(optimizer),
                    "img_per_s": window_n / max(now - window_t, 1e-9),
                }
                hooks.on_step(row)
                if hooks.bar is not None:
                    hooks.bar.set_postfix(
                        loss=f"{row['loss']:.4f}", img_s=f"{row['img_per_s']:.0f}"
                    )
                window_loss, window_n, window_t = 0.0, 0, now
            if hooks.should_stop is not None and hooks.should_stop():
                break
        else:
            compute_s += time.perf_counter() - t_got
        t_mark = time.perf_counter()
    if pending:
        _optimizer_step(model, optimizer, scheduler, scaler, grad_clip)
        steps += 1
    part_keys = sorted(part_sums)
    totals = [loss_sum, float(correct), float(seen), float(skipped)] + [
        part_sums[k] for k in part_keys
    ]
    if hooks.reduce is not None:
        totals = hooks.reduce(totals)
    elapsed = time.perf_counter() - t0
    n = max(totals[2], 1.0)
    return {
        "train.loss": totals[0] / n,
        "train.accuracy": totals[1] / n,
        "images": int(totals[2]),
        "skipped": int(totals[3]),
        "steps": steps,
        "time_s": elapsed,
        "img_per_s": totals[2] / max(elapsed, 1e-9),
        **{f"train.loss.{k}": totals[4 + i] / n for i, k in enumerate(part_keys)},
    }


def _optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler | None,
    grad_clip: float | None,
) -> None:
    if scaler is not None:
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    loader: Iterable[Any],
    ctx: StepContext,
    *,
    step_fn: StepFn = classification_step,
    prefix: str = "val",
    reduce: Reducer | None = None,
    on_skipped: Callable[[list[Any]], None] | None = None,
) -> dict[str, Any]:
    """Mean loss and accuracy of ``model`` (eval mode) over ``loader``.

    Returns:
        ``{f"{prefix}.loss", f"{prefix}.accuracy", f"{prefix}.images"}``; loss is NaN when
        the loader held no readable images.
    """
    was_training = model.training
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        for batch in loader:
            if batch[2] and on_skipped:
                on_skipped(batch[2])
            if _batch_size(batch) == 0:
                continue
            out = step_fn(model, batch, ctx)
            loss_sum += float(out.loss.item()) * out.n
            correct += out.correct
            seen += out.n
    finally:
        model.train(was_training)
    totals = [loss_sum, float(correct), float(seen)]
    if reduce is not None:
        totals = reduce(totals)
    n = totals[2]
    return {
        f"{prefix}.loss": totals[0] / n if n else float("nan"),
        f"{prefix}.accuracy": totals[1] / n if n else float("nan"),
        f"{prefix}.images": int(n),
    }
