"""``HealthCollector``: the training callback that records ``RUN/health/trace.jsonl``.

Cheap by default. Every optimizer step costs a few timestamps and one short JSON line
(loss, items, lr, data wait, compute time). Gradients, weights, updates and activations
are looked at on *sampled* steps only (the first ``early_steps``, then every
``sample_every``): the optimizer's step hooks read gradient and weight norms per
parameter group (one device→host copy), forward hooks are attached for that one step
only. CPU, RAM and GPU (NVML, when ``pynvml`` is installed) are read about once per
``system_every_s`` seconds.

It sees whatever the optimizer trains: the whole network, or the head alone when the
trainer works on cached frozen-backbone features. Under DDP the trainer runs callbacks on
rank 0 only; gradients there are already averaged over ranks.

When a rule with ``action: stop`` fires the collector sets ``state.stop`` and
``state.stop_reason`` (a clean stop with a checkpoint); ``action: save`` writes the
offending tensors to ``RUN/health/snapshots/RULE_stepN.pt`` (tensors only, loadable with
``torch.load(weights_only=True)``). At the end (also after a failure such as a diverged
loss) it writes ``findings.json`` and ``report.html`` and logs a short summary.

Example:
    >>> train("datasets/bins", "runs/a", cfg)  # adds HealthCollector(cfg.health) itself  # doctest: +SKIP
    >>> train("datasets/bins", "runs/b", cfg.model_copy(update={"health": HealthConfig(enabled=False)}),
    ...       callbacks=[HealthCollector(HealthConfig(sample_every=10))])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from cvpipe.engine.callbacks import Callback, TrainState
from cvpipe.engine.health.config import HealthConfig
from cvpipe.engine.health.rule_base import Rule
from cvpipe.engine.health.rules import build_rules, evaluate_rules
from cvpipe.engine.health.system import SystemMonitor
from cvpipe.engine.health.trace import Trace
from cvpipe.errors import TrainingDiverged
from cvpipe.io import atomic_open

log = logging.getLogger(__name__)

_RELU = (nn.ReLU, nn.ReLU6)
ACT_VALUES = 65536  # activation statistics are estimated on at most this many values per layer
_OTHER_ACT = (nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish)


def layer_type(m: nn.Module) -> str | None:
    """The activation-statistics type of a leaf module, or None when it is not watched."""
    if isinstance(m, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, _RELU):
        return "relu"
    if isinstance(m, nn.Sigmoid):
        return "sigmoid"
    if isinstance(m, nn.Tanh):
        return "tanh"
    if isinstance(m, _OTHER_ACT):
        return "act"
    return None


def _spread(items: list[Any], k: int) -> list[Any]:
    """At most ``k`` items spread evenly, first and last kept."""
    if len(items) <= k:
        return items
    if k == 1:
        return items[:1]
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def parameter_groups(model: nn.Module, max_groups: int) -> list[tuple[str, list[nn.Parameter]]]:
    """Trainable parameters grouped by owning module, in model order; beyond ``max_groups``
    adjacent modules are merged (named ``first..last``)."""
    groups: list[tuple[str, list[nn.Parameter]]] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        owner = name.rsplit(".", 1)[0] if "." in name else "(root)"
        if groups and groups[-1][0] == owner:
            groups[-1][1].append(p)
        else:
            groups.append((owner, [p]))
    if len(groups) <= max_groups:
        return groups
    merged: list[tuple[str, list[nn.Parameter]]] = []
    per = len(groups) / max_groups
    for i in range(max_groups):
        chunk = groups[round(i * per) : round((i + 1) * per)]
        if chunk:
            name = chunk[0][0] if len(chunk) == 1 else f"{chunk[0][0]}..{chunk[-1][0]}"
            merged.append((name, [p for _, ps in chunk for p in ps]))
    return merged


def _norms(tensors: list[torch.Tensor]) -> list[float]:
    """L2 norm of each tensor (fp32), with one device→host copy per device."""
    if not tensors:
        return []
    foreach = getattr(torch, "_foreach_norm", None)
    vals = foreach(tensors) if foreach is not None else [t.norm() for t in tensors]
    if len({v.device for v in vals}) == 1:
        return [float(x) for x in torch.stack([v.float() for v in vals]).cpu().tolist()]
    return [float(v.float().cpu()) for v in vals]


def _foreach_copy_(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    fn = getattr(torch, "_foreach_copy_", None)
    if fn is not None:
        fn(dst, src)
    else:
        for d, x in zip(dst, src, strict=True):
            d.copy_(x)


def _foreach_sub_(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    fn = getattr(torch, "_foreach_sub_", None)
    if fn is not None:
        fn(dst, src)
    else:
        for d, x in zip(dst, src, strict=True):
            d.sub_(x)


def _group_norms(names: list[str], index: list[int], per_param: list[float]) -> dict[str, float]:
    sq = [0.0] * len(names)
    for gi, v in zip(index, per_param, strict=True):
        sq[gi] += v * v
    return {n: math.sqrt(s) if math.isfinite(s) else s for n, s in zip(names, sq, strict=True)}


class HealthCollector(Callback):
    """Records the health trace of a run and applies the rules (see the module docstring).

    Args:
        config: the ``health`` section (default: all defaults).
    """

    def __init__(self, config: HealthConfig | None = None) -> None:
        self.config = config or HealthConfig()
        self.trace = Trace()
        self.rules: list[Rule] = build_rules(self.config.rules)
        self.reported: set[str] = set()
        self._file: IO[str] | None = None
        self._handles: list[Any] = []
        self._act_handles: list[Any] = []
        self._acts: dict[str, torch.Tensor] = {}
        self._before: list[torch.Tensor] | None = None
        self._spare: list[torch.Tensor] | None = None
        self._grads: dict[str, float] = {}
        self._weights: dict[str, float] = {}
        self._state: TrainState | None = None
        self.next_step = 1
        self.finished = False

    # -- lifecycle --------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        assert self._state is not None
        return self._state.run_dir / "health"

    def is_sample(self, step: int) -> bool:
        """Whether optimizer step ``step`` (1-based, global) is a sampled one."""
        return step <= self.config.early_steps or step % self.config.sample_every == 0

    def on_train_start(self, state: TrainState) -> None:
        self._state = state
        self.dir.mkdir(parents=True, exist_ok=True)
        done_epochs = len(state.history)
        self.next_step = done_epochs * state.steps_per_epoch + 1
        self._open_trace(done_epochs)
        model = state.model
        self.groups = parameter_groups(model, self.config.max_groups)
        self.params = [p for _, ps in self.groups for p in ps]
        self.group_index = [i for i, (_, ps) in enumerate(self.groups) for _ in ps]
        self.group_names = [n for n, _ in self.groups]
        leaves = [
            (n, m, t)
            for n, m in model.named_modules()
            if (t := layer_type(m)) and not list(m.children())
        ]
        self.layers = _spread(leaves, self.config.max_layers) if self.config.activations else []
        device = next((p.device for p in self.params), torch.device("cpu"))
        self.system = SystemMonitor(device, children=bool(getattr(state.config, "workers", 1)))
        meta = {"kind": "meta", "groups": self.group_names,
                "layers": [{"name": n, "type": t} for n, _, t in self.layers],
                **self._run_meta(state, device)}  # fmt: skip
        self._write(meta)
        opt = state.optimizer
        self._handles = [
            opt.register_step_pre_hook(self._pre_step),
            opt.register_step_post_hook(self._post_step),
        ]
        self._t0 = time.perf_counter() - (self.trace.steps[-1]["t"] if self.trace.steps else 0.0)
        self._last_sys = -math.inf
        self._arm_activations(self.is_sample(self.next_step))

    def _run_meta(self, state: TrainState, device: torch.device) -> dict[str, Any]:
        cfg = state.config
        names, counts = _class_counts(state)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return {
            "task": state.task, "classes": len(names) or state.extra.get("num_classes"), "class_names": names, "class_counts": counts,
            "device": str(device), "cpu_count": os.cpu_count() or 1,
            "workers": getattr(cfg, "workers", None) if getattr(cfg, "workers", None) is not None else min(4, os.cpu_count() or 1),
            "batch_size": getattr(cfg, "batch_size", None), "world_size": world,
            "sample_every": self.config.sample_every, "early_steps": self.config.early_steps,
            "steps_per_epoch": state.steps_per_epoch, "epochs": state.epochs,
            "trains": "head" if state.extra.get("feature_cache") else "model",
        }  # fmt: skip

    def _open_trace(self, done_epochs: int) -> None:
        path = self.dir / "trace.jsonl"
        if done_epochs and path.is_file():  # resume: keep what the finished epochs recorded
            old = Trace.read(path)
            last = self.next_step - 1
            rows = [{"kind": "meta", **old.meta}] if old.meta else []
            rows += [
                r
                for r in old.steps + old.samples + old.system + old.events
                if r.get("s", 0) <= last
            ]
            rows += [r for r in old.epochs if r.get("epoch", 0) <= done_epochs]
            rows.sort(key=lambda r: (r.get("s", 0), r["kind"] != "meta"))
            with atomic_open(path) as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            for r in rows:
                self.trace.add(r)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in _finish
        else:
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in _finish

    def _write(self, row: dict[str, Any]) -> None:
        self.trace.add(row)
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")

    # -- every step ---------------------------------------------------------------------
    def on_optimizer_step(self, state: TrainState, info: dict[str, Any]) -> None:
        s = int(info["global_step"])
        now = time.perf_counter()
        self._write({
            "kind": "step", "s": s, "e": int(info["epoch"]) + 1, "loss": info["loss"], "n": info["n"],
            "lr": info["lr"], "data_s": round(info["data_s"], 6), "compute_s": round(info["compute_s"], 6),
            "t": round(now - self._t0, 4),
        })  # fmt: skip
        if now - self._last_sys >= self.config.system_every_s:
            self._last_sys = now
            self._write(
                {"kind": "sys", "s": s, "t": round(now - self._t0, 3), **self.system.sample()}
            )
        self.next_step = s + 1
        sample_next = self.is_sample(self.next_step)
        if not sample_next:
            self._spare = None  # no model-sized buffer held between sparse samples
        self._arm_activations(sample_next)

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        self._write(dict(row))
        if self._file is not None:
            self._file.flush()
        for f in evaluate_rules(self.trace, self.config.rules):
            if f.fired:
                self._fire(
                    state,
                    f.rule,
                    f.action,
                    f.steps[0] if f.steps else 0,
                    f.messages[0] if f.messages else "",
                )

    def on_train_end(self, state: TrainState) -> None:
        self._finish(state)

    def on_train_failed(self, state: TrainState, error: BaseException) -> None:
        what = "diverged" if isinstance(error, TrainingDiverged) else "failed"
        self._write(
            {"kind": "event", "s": self.next_step, "what": what, "message": str(error)[:500]}
        )
        self._finish(state)

    # -- sampled steps ----------------------------------------------------------------------
    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self.is_sample(self.next_step):
            return
        with torch.no_grad():
            have = [(i, p) for i, p in enumerate(self.params) if p.grad is not None]
            grads = _norms([p.grad.detach() for _, p in have if p.grad is not None])
            idx = [self.group_index[i] for i, _ in have]
            names = self.group_names
            self._grads = {
                k: v
                for k, v in _group_norms(names, idx, grads).items()
                if k in {names[j] for j in idx}
            }
            self._before = self._snapshot_params()

    def _post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._before is None:
            return
        before, self._before = self._before, None
        with torch.no_grad():
            weights = _norms([p.detach() for p in self.params])
            _foreach_sub_(before, [p.detach() for p in self.params])  # before - after, in place
            deltas = _norms(before)
        self._spare = before  # reused by the next sampled step (the first steps are consecutive)
        w = _group_norms(self.group_names, self.group_index, weights)
        d = _group_norms(self.group_names, self.group_index, deltas)
        update = {g: d[g] / w[g] for g in w if w[g] > 1e-12}
        sample = {"kind": "sample", "s": self.next_step, "grad": self._grads, "weight": w,
                  "update": update, "act": self._activation_stats()}  # fmt: skip
        self._write(sample)
        if self._state is not None:
            for rule in self.rules:
                msg = rule.check_sample(sample, self.trace)
                if msg and (
                    rule.name != "PoorWeightInitialization"
                    or self.next_step <= rule.params["steps"]
                ):
                    self._fire(self._state, rule.name, rule.action, self.next_step, msg)

    def _snapshot_params(self) -> list[torch.Tensor]:
        """A copy of the trained parameters, into the previous sample's buffers when they
        are still held (fresh allocations of a model-sized copy cost more than the copy on
        CPU: page faults)."""
        params = [p.detach() for p in self.params]
        spare, self._spare = self._spare, None
        if (
            spare is None
            or len(spare) != len(params)
            or any(
                b.shape != p.shape or b.dtype != p.dtype or b.device != p.device
                for b, p in zip(spare, params, strict=True)
            )
        ):
            return [p.clone() for p in params]
        _foreach_copy_(spare, params)
        return spare

    def _arm_activations(self, on: bool) -> None:
        if on and not self._act_handles and self.layers:
            self._acts = {}
            self._act_handles = [
                m.register_forward_hook(self._act_hook(n, t)) for n, m, t in self.layers
            ]
        elif not on and self._act_handles:
            for h in self._act_handles:
                h.remove()
            self._act_handles = []

    def _act_hook(self, name: str, kind: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not module.training or name in self._acts or not isinstance(output, torch.Tensor):
                return
            with torch.no_grad():
                x = output.detach()
                if x.is_contiguous():
                    x = x.reshape(-1)
                elif x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
                    x = x.permute(0, 2, 3, 1).reshape(-1)  # storage order: a view, no copy
                else:
                    x = x[: max(1, x.shape[0] // 4)].reshape(-1)
                if x.numel() > ACT_VALUES:
                    x = x[:: x.numel() // ACT_VALUES]  # evenly strided subsample (a view)
                xf = x.float()
                std, mean = torch.std_mean(xf) if xf.numel() > 1 else (xf.new_zeros(()), xf.mean())
                zero = (x == 0).float().mean()
                if kind == "sigmoid":
                    sat = ((xf < 0.03) | (xf > 0.97)).float().mean()
                elif kind == "tanh":
                    sat = (xf.abs() > 0.97).float().mean()
                else:
                    sat = xf.new_full((), float("nan"))
                self._acts[name] = torch.stack([mean, std, zero, sat])

        return hook

    def _activation_stats(self) -> dict[str, dict[str, float | None]]:
        if not self._acts:
            return {}
        names = list(self._acts)
        vals = torch.stack([self._acts[n].cpu() for n in names]).tolist()
        self._acts = {}
        return {
            n: {"mean": v[0], "std": v[1], "zero": v[2], "sat": None if math.isnan(v[3]) else v[3]}
            for n, v in zip(names, vals, strict=True)
        }

    # -- actions ----------------------------------------------------------------------------
    def _fire(self, state: TrainState, rule: str, action: str, step: int, msg: str) -> None:
        if rule in self.reported:
            return
        self.reported.add(rule)
        log.warning("health: %s at step %d: %s", rule, step, msg)
        if action == "stop" and not state.stop:
            state.stop = True
            state.stop_reason = f"health rule {rule}: {msg}"
            self._write(
                {"kind": "event", "s": step, "what": "stopped", "message": state.stop_reason}
            )
        elif action == "save":
            self._snapshot(state, rule, step)

    def _snapshot(self, state: TrainState, rule: str, step: int) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for name, p in state.model.named_parameters():
            if p.requires_grad:
                tensors[f"param/{name}"] = p.detach().cpu().clone()
                if p.grad is not None:
                    tensors[f"grad/{name}"] = p.grad.detach().cpu().clone()
        losses = [r["loss"] for r in self.trace.steps[-200:]]
        tensors["loss/last_steps"] = torch.tensor(losses, dtype=torch.float64)
        path = self.dir / "snapshots" / f"{rule}_step{step}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb", encoding=None) as f:
            torch.save(tensors, f)
        log.warning("health: %s: tensors saved to %s", rule, path)

    # -- the end ------------------------------------------------------------------------------
    def _finish(self, state: TrainState) -> None:
        if self.finished:
            return
        self.finished = True
        for h in self._handles:
            h.remove()
        self._arm_activations(False)
        self._before = self._spare = None
        if self._file is not None:
            self._file.close()
            self._file = None
        from cvpipe.engine.health.report import write_outputs

        result = write_outputs(
            state.run_dir, self.trace, self.config, stop_reason=state.stop_reason
        )
        fired = [f for f in result.findings if f.fired]
        if fired:
            names = ", ".join(f"{f.rule} ({f.triggered})" for f in fired)
            log.warning(
                "health: %d rule(s) fired: %s; see %s",
                len(fired),
                names,
                result.report or result.findings_path,
            )
        else:
            log.info(
                "health: no rule fired (%d rules checked); see %s",
                len(result.findings),
                result.findings_path,
            )


def _class_counts(state: TrainState) -> tuple[list[str], list[int]]:
    """Class names and train-split counts from the run's dataset.lock (empty when unknown)."""
    lock = state.run_dir / "dataset.lock"
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        from cvpipe.data.manifest import Dataset

        ds = Dataset.load(info["dataset"])
        train_ids = set(info.get("splits", {}).get("train", []))
        counts = [0] * len(ds.classes)
        for rec in ds.records:
            if rec.id in train_ids:
                counts[ds.class_index(rec)] += 1
        return list(ds.classes), counts
    except Exception:  # noqa: BLE001 - the counts are an extra; never fail a run for them
        log.debug("health: no class counts (dataset.lock unreadable)", exc_info=True)
        return [], []
