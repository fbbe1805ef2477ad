"""``train()``: a dataset and a :class:`TrainConfig` in, a run directory out.

The trainer wires the pieces and owns the run directory; the loops live in
:mod:`cvpipe.engine.loop` and take a task *step function*, so detection can add its own
step and data pipeline later without touching this flow:

1. resolve splits (carving a seeded, stratified val from train when there is none) and
   write ``config.yaml`` + ``dataset.lock``;
2. build the model (:func:`cvpipe.models.classification.create_classifier`), freeze it;
3. with ``freeze: frozen`` and the feature cache on, train the head on cached backbone
   features (:mod:`cvpipe.engine.features`); with ``freeze: last-n`` and
   ``feature_cache: on``, train the last stages + head on cached activations of the
   frozen stem (:mod:`cvpipe.engine.cached_data`); else on images;
4. each epoch: train, validate, write the epoch row, save ``last.pt`` (and ``best.pt`` on
   the monitored metric) atomically, update ``model_card.json``, run callbacks, stop early
   when patience runs out.

Every random choice is a function of ``(seed, epoch, position)``, so ``resume=True``
continues from ``last.pt`` and reproduces the metrics of an uninterrupted run.

Example:
    >>> cfg = load_config(TrainConfig, overrides=["model=resnet50", "freeze=frozen", "epochs=10"])  # doctest: +SKIP
    >>> result = train("datasets/bins", "runs/r50", cfg)  # doctest: +SKIP
    >>> result.best["val.accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvpipe.config import dump_config, load_config
from cvpipe.data.manifest import Dataset
from cvpipe.engine import distributed as D
from cvpipe.engine.callbacks import Callback, CallbackList, Monitor, TrainState
from cvpipe.engine.checkpoint import (
    check_compatible,
    ckpt_meta,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)
from cvpipe.engine.config import TrainConfig
from cvpipe.engine.data import build_data
from cvpipe.engine.devices import resolve_amp, resolve_device
from cvpipe.engine.loop import EpochHooks, StepContext, evaluate_loss, train_one_epoch
from cvpipe.engine.optim import build_optimizer, build_scheduler
from cvpipe.engine.results import RunResult, run_meta, write_card
from cvpipe.engine.runs import MetricsLog, RunDir, read_metrics
from cvpipe.engine.skipped import SkippedImages
from cvpipe.engine.train_data import TrainData, resolve_splits
from cvpipe.errors import CheckpointError
from cvpipe.io import atomic_link_or_copy, read_json, write_json
from cvpipe.progress import Bar
from cvpipe.tasks.registry import get_task

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------- training
def train(
    dataset: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
) -> RunResult:
    """Train a model for the dataset's task into the run directory ``out``.

    The task (:func:`cvpipe.tasks.get_task`) supplies the run (:class:`Run` or its own
    subclass), the step function and the defaults.

    Args:
        dataset: dataset directory of any registered task.
        out: run directory (created). With ``resume=True`` it must hold ``checkpoints/last.pt``.
        config: the resolved :class:`TrainConfig` (default: all defaults). On resume the
            run's own ``config.yaml`` is used when ``config`` is None. Without ``model``,
            the task's default (:func:`cvpipe.engine.defaults.apply_task_defaults`).
        resume: continue from ``last.pt``.
        callbacks: hooks run on rank 0 (health collector, loggers, custom stops).

    Returns:
        A :class:`RunResult`.

    Raises:
        DatasetError: empty split.
        ConfigError: invalid settings (device, amp, class weights...).
        CheckpointError: on resume, a checkpoint for another task, class list or model.
        TrainingDiverged: the loss became NaN/Inf (the last good checkpoint is kept).
    """
    rd = RunDir(out)
    if resume and config is None:
        config = load_config(TrainConfig, rd.config)
    config = config or TrainConfig()
    ds = Dataset.load(dataset)
    from cvpipe.engine.defaults import apply_task_defaults

    task = get_task(ds.task)
    config, _ = apply_task_defaults(config, ds.task)
    task.check_config(config)
    run_class: type[Run] = task.run_class()
    device = resolve_device(config.device, D.env_context().local_rank)
    dctx = D.setup(device.type)
    try:
        return run_class(ds, rd, config, device, dctx, resume, callbacks).run()
    finally:
        if (
            dctx.enabled
            and D.env_context().world_size > 1
            and os.environ.get("CVPIPE_KEEP_PG") != "1"
        ):
            D.teardown()


class Run:
    """One training run (state shared by the phases of :func:`train`)."""

    def __init__(
        self,
        ds: Dataset,
        rd: RunDir,
        config: TrainConfig,
        device: torch.device,
        dctx: D.DistContext,
        resume: bool,
        callbacks: Sequence[Callback],
    ) -> None:
        self.ds, self.rd, self.config, self.device, self.dctx, self.resume = (
            ds,
            rd,
            config,
            device,
            dctx,
            resume,
        )
        callbacks = list(callbacks)
        if config.health.enabled:
            from cvpipe.engine.health.collector import HealthCollector

            callbacks.append(HealthCollector(config.health))
        if dctx.is_main:
            from cvpipe.tracking.hooks import with_tracking

            callbacks = with_tracking(callbacks, config)  # trackers last: they log health
        self.callbacks = CallbackList(callbacks if dctx.is_main else ())
        self.amp_dtype = resolve_amp(config.amp, device)
        # channels_last: auto is on for CUDA and for CPU, where oneDNN convolutions work
        # in NHWC and skip a layout reorder per layer (fp32 training steps, 2-core AVX-512
        # CPU: +11% img/s ResNet-18, +22% ResNet-50, +16% VGG16, +39% MobileNetV3-Large,
        # +41% EfficientNet-B0; SSDlite320-MobileNetV2 1.8x; benchmarks/finetune_speed.py
        # and detect_train_speed.py measure it end to end)
        self.channels_last = config.channels_last == "on" or (
            config.channels_last == "auto" and device.type in ("cpu", "cuda")
        )
        self.skipped = SkippedImages(rd.problems, dctx.is_main, config.max_skipped_fraction)
        es = config.early_stopping
        self.monitor = Monitor(es.metric, es.resolved_mode, es.patience, es.min_delta)

    # -- setup ------------------------------------------------------------------------
    def _check_resume(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        if not self.resume:
            return None, None
        if not self.rd.last.is_file():
            raise CheckpointError(
                f"{self.rd.last}: nothing to resume (no last.pt); train without --resume"
            )
        ckpt = load_checkpoint(self.rd.last)
        meta = ckpt_meta(ckpt)
        check_compatible(
            meta,
            path=self.rd.last,
            task=self.ds.task,
            classes=self.ds.output_classes,
            model=self.config.model_name,
        )
        lock = read_json(self.rd.lock) if self.rd.lock.is_file() else None
        return ckpt, lock

    def _build_model(self) -> Any:
        from cvpipe.models.backbones import model_meta
        from cvpipe.models.classification import create_classifier

        torch.manual_seed(self.config.seed)
        head = (
            self.config.head
            if self.config.head is not None
            else model_meta(self.config.model_name).default_head
        )
        net = create_classifier(
            self.config.model_name, num_classes=len(self.ds.output_classes), weights=self.config.weights, head=head,
            freeze=self.config.freeze, last_n=self.config.last_n, input_size=self.config.input_size,
        )  # fmt: skip
        self.head_spec = head.model_dump(mode="json")
        return net.to(self.device)

    def _write_start(self, lock: dict[str, Any]) -> None:
        if not self.dctx.is_main:
            return
        self.rd.checkpoints.mkdir(parents=True, exist_ok=True)
        dump_config(self.config, self.rd.config)
        write_json(self.rd.lock, lock)
        if not self.resume:
            self.rd.problems.unlink(missing_ok=True)

    # -- main flow ----------------------------------------------------------------------
    def run(self) -> RunResult:
        ckpt, old_lock = self._check_resume()
        splits, lock = resolve_splits(self.ds, self.config, old_lock)
        self._write_start(lock)
        net = self._build_model()
        if ckpt is not None:
            load_state_strict(net, ckpt["model"], self.rd.last)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        data = self._build_data(splits, net)
        trained = self._trained_module(net, data)
        optimizer = build_optimizer(
            [p for p in trained.parameters() if p.requires_grad], self.config.optimizer
        )
        steps_per_epoch = -(-len(data.train_loader) // self.config.accumulate)
        scheduler = build_scheduler(
            optimizer, self.config.scheduler, steps_per_epoch, self.config.epochs
        )
        scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        start_epoch = 0
        meta = self._meta(net)
        meta["exif"] = "apply" if self.ds.info.exif == "apply" else "keep"  # predict/serve orient
        meta["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        if ckpt is not None:
            start_epoch = self._restore(ckpt, optimizer, scheduler, scaler, meta)
        model = trained
        if self.dctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(trained, device_ids=ids)
        state = TrainState(
            self.rd.root,
            self.config,
            self.ds.task,
            trained,
            optimizer,
            self.config.epochs,
            steps_per_epoch,
        )
        state.extra.update(net=net, feature_cache=data.cache_status)
        self.parts = (net, trained, model, optimizer, scheduler, scaler, data, meta)
        return self._epochs(state, start_epoch)

    def _trained_module(self, net: Any, data: Any) -> nn.Module:
        """What the optimizer trains: the cached path's model (head, or tail + head of a
        ``last-n`` cut), else the whole net."""
        cached_model = getattr(data, "model", None)
        trained: nn.Module = cached_model if cached_model is not None else net
        return trained

    def _build_data(self, splits: Any, net: Any) -> Any:
        """The run's loaders (:class:`TrainData`; a task may return its own kind)."""
        return build_data(
            self.ds,
            splits,
            net,
            self.config,
            self.device,
            self.dctx,
            self.amp_dtype,
            self.skipped.report,
        )

    def _meta(self, net: Any) -> dict[str, Any]:
        """What checkpoints and the model card record about the model."""
        return run_meta(self.config, net, self.ds.task, self.ds.output_classes, self.head_spec)

    def _card_extra(self) -> dict[str, Any]:
        """Task-specific entries of the model card's ``extra``."""
        return {}

    def _restore(
        self,
        ckpt: dict[str, Any],
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        meta: dict[str, Any],
    ) -> int:
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler") is not None:
            scaler.load_state_dict(ckpt["scaler"])
        old = ckpt_meta(ckpt)
        self.monitor.load_state_dict(old.get("monitor", {}))
        meta["created"] = old.get("created", meta["created"])
        self.skipped.seen = set(old.get("skipped_ids", []))
        done = int(ckpt["epoch"])
        log.info("resuming %s after epoch %d of %d", self.rd.root, done, self.config.epochs)
        if old.get("stopped_early"):
            log.info("the run had stopped early at epoch %d; nothing left to do", done)
            self.already_stopped = True
        return done

    def _epochs(self, state: TrainState, start_epoch: int) -> RunResult:
        net, trained, model, optimizer, scheduler, scaler, data, meta = self.parts
        ctx = StepContext(
            self.device,
            data.criterion,
            self.amp_dtype,
            # images, and the cached activations of a last-n stem, are 4-D; pooled features not
            self.channels_last and (not data.cached or self.config.freeze == "last-n"),
        )
        eval_ctx = StepContext(
            self.device, nn.CrossEntropyLoss(), self.amp_dtype, ctx.channels_last
        )
        step_fn = get_task(self.ds.task).step_function()
        mlog = (
            MetricsLog(self.rd.metrics, start_epoch + 1 if self.resume else None)
            if self.dctx.is_main
            else None
        )
        history = read_metrics(self.rd.root) if self.resume and self.dctx.is_main else []
        state.history = history
        stopped = getattr(self, "already_stopped", False)
        self.callbacks.on_train_start(state)
        try:
            for epoch in range(start_epoch, self.config.epochs if not stopped else start_epoch):
                state.epoch = epoch
                row = self._one_epoch(
                    state, model, optimizer, scheduler, scaler, data, ctx, eval_ctx, step_fn, mlog
                )
                history.append(row)
                improved = self.monitor.update(epoch + 1, row)
                state.best = self.monitor.best
                stopped = self.monitor.should_stop
                if stopped:
                    state.stop_reason = f"early stopping: {self.monitor.metric} did not improve for {self.monitor.patience} epochs"
                self._save(
                    epoch + 1,
                    net,
                    optimizer,
                    scheduler,
                    scaler,
                    meta,
                    improved,
                    stopped,
                    history,
                    data,
                )
                self.callbacks.on_epoch_end(state, row)
                stopped = D.any_rank(stopped or state.stop)
                if stopped:
                    log.info(
                        "stopping after epoch %d: %s",
                        epoch + 1,
                        state.stop_reason or "requested by a callback",
                    )
                    if not self.monitor.should_stop:
                        self._save(
                            epoch + 1,
                            net,
                            optimizer,
                            scheduler,
                            scaler,
                            meta,
                            False,
                            True,
                            history,
                            data,
                            best=False,
                        )
                    break
            self.callbacks.on_train_end(state)
        except BaseException as exc:
            self.callbacks.on_train_failed(state, exc)
            raise
        finally:
            if mlog is not None:
                mlog.close()
        best = next((r for r in history if r["epoch"] == self.monitor.best_epoch), None)
        return RunResult(
            self.rd.root,
            history,
            best,
            self.monitor.best_epoch,
            stopped,
            data.cache_status,
            len(self.skipped.seen),
        )

    def _one_epoch(
        self,
        state: TrainState,
        model: nn.Module,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        data: TrainData,
        ctx: StepContext,
        eval_ctx: StepContext,
        step_fn: Any,
        mlog: MetricsLog | None,
    ) -> dict[str, Any]:
        from cvpipe.data.datasets import mix_seed

        epoch = state.epoch
        torch.manual_seed(mix_seed(self.config.seed, epoch, 3))
        data.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()

        def on_step(row: dict[str, Any]) -> None:
            row["epoch"] = epoch + 1
            state.step, state.global_step = row["step"], row["global_step"]
            if mlog is not None:
                mlog.write(row)
            self.callbacks.on_step_end(state, row)

        total = len(data.train_sampler) * self.dctx.world_size  # this rank's share x ranks
        with Bar(
            total=total if self.dctx.is_main else 0,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="img",
        ) as bar:
            hooks = EpochHooks(
                on_step,
                self.skipped.report,
                D.all_reduce_sum,
                bar if self.dctx.is_main else None,
                self.config.log_every,
                on_optimizer_step=(
                    (lambda info: self.callbacks.on_optimizer_step(state, info))
                    if self.callbacks.callbacks
                    else None
                ),
                should_stop=(lambda: state.stop) if not self.dctx.enabled else None,
            )
            stats = train_one_epoch(
                model, data.train_loader, optimizer, ctx, epoch=epoch, scheduler=scheduler, scaler=scaler,
                accumulate=self.config.accumulate, grad_clip=self.config.grad_clip, step_fn=step_fn, hooks=hooks,
                steps_before=epoch * state.steps_per_epoch,
            )  # fmt: skip
        self.skipped.check_epoch(stats, epoch)
        unwrapped = (
            model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        )
        row = self._epoch_row(epoch, stats, unwrapped, data, eval_ctx, step_fn, optimizer, t0)
        if mlog is not None:
            mlog.write(row)
        return row

    def _epoch_row(
        self,
        epoch: int,
        stats: dict[str, Any],
        model: nn.Module,
        data: Any,
        eval_ctx: StepContext,
        step_fn: Any,
        optimizer: Any,
        t0: float,
    ) -> dict[str, Any]:
        """Validate and build (and log) the epoch row of metrics.jsonl."""
        val = evaluate_loss(
            model,
            data.val_loader,
            eval_ctx,
            step_fn=step_fn,
            reduce=D.all_reduce_sum,
            on_skipped=self.skipped.report,
        )
        row = {
            "kind": "epoch", "epoch": epoch + 1,
            "train.loss": stats["train.loss"], "train.accuracy": stats["train.accuracy"], **val,
            "lr": float(optimizer.param_groups[0]["lr"]), "img_per_s": stats["img_per_s"],
            "train.images": stats["images"], "skipped": stats["skipped"], "steps": stats["steps"],
            "time_s": time.perf_counter() - t0,
        }  # fmt: skip
        log.info(
            "epoch %d/%d  train.loss %.4f  train.acc %.3f  val.loss %.4f  val.acc %.3f  %.0f img/s",
            epoch + 1, self.config.epochs, row["train.loss"], row["train.accuracy"], row["val.loss"], row["val.accuracy"], row["img_per_s"],
        )  # fmt: skip
        return row

    def _update_meta(self, meta: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Refresh task-specific ``meta`` entries from the history before a checkpoint."""

    def _save(
        self,
        epoch: int,
        net: Any,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        meta: dict[str, Any],
        improved: bool,
        stopped: bool,
        history: list[dict[str, Any]],
        data: TrainData,
        best: bool = True,
    ) -> None:
        if not self.dctx.is_main:
            return
        self._update_meta(meta, history)
        state = {
            "model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None, "epoch": epoch,
        }  # fmt: skip
        full = {
            **meta,
            "epoch": epoch,
            "monitor": self.monitor.state_dict(),
            "stopped_early": stopped,
            "skipped_ids": sorted(self.skipped.seen),
        }
        save_checkpoint(self.rd.last, state, full)
        if improved and best:  # the same bytes: link rather than serialise twice
            atomic_link_or_copy(self.rd.last, self.rd.best)
        extra = {
            "stopped_early": stopped,
            "feature_cache": data.cache_status,
            "skipped_images": len(self.skipped.seen),
            "epochs_run": epoch,
            **self._card_extra(),
        }
        write_card(self.rd, meta, self.monitor, history, extra)
