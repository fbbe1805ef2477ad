"""Health rules on the loss curves: LossNotDecreasing, Overfit, Overtraining, InitialLoss.

They read the step rows (training loss per step) and the epoch rows (``train.loss``,
``val.loss``) of a :class:`~cvpipe.engine.health.trace.Trace`; see
:mod:`cvpipe.engine.health.rules` for settings and actions.

Example:
    >>> Overfit().params["ratio"]
    1.5
"""

from __future__ import annotations

import math

from cvpipe.engine.health.rule_base import (
    Hit,
    Rule,
    auto_window,
    finite,
    register,
    windows,
)
from cvpipe.engine.health.trace import Trace
from cvpipe.errors import UnknownNameError
from cvpipe.tasks.registry import get_task


@register
class LossNotDecreasing(Rule):
    name = "LossNotDecreasing"
    description = (
        "Checks that the training loss keeps going down: the mean loss of each window of "
        "steps is compared with the best window so far."
    )
    recommendation = (
        "Check the labels (do they depend on the image?), raise or lower the learning rate, "
        "check that the right parameters are trainable and that inputs are normalised."
    )
    defaults = {
        "window": None,
        "min_delta_pct": 1.0,
        "patience": 3,
        "min_loss": 0.02,
        "skip_steps": 0,
    }
    # window: steps per window (None = 10% of the steps, at least 5);
    # min_delta_pct: improvement on the best window that counts, in percent;
    # patience: windows in a row without improvement before it fires;
    # min_loss: a loss already below this is converged, not stuck.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        rows = [r for r in trace.steps if r["s"] > self.params["skip_steps"]]
        loss = Trace.column(rows, "loss")
        size = auto_window(self.params["window"], len(loss), 10)
        hits: list[Hit] = []
        best, bad = math.inf, 0
        for a, b in windows(len(loss), size):
            vals = finite(loss[a:b])
            if not len(vals):
                continue
            m = float(vals.mean())
            if m < best * (1 - self.params["min_delta_pct"] / 100):
                best, bad = m, 0
                continue
            bad += 1
            if bad >= self.params["patience"] and m > self.params["min_loss"]:
                hits.append((int(rows[b - 1]["s"]), f"mean loss {m:.4g} over steps {rows[a]['s']}-{rows[b - 1]['s']} "
                             f"is no better than the best window ({best:.4g}) for {bad} windows"))  # fmt: skip
        return hits, len(loss)


@register
class Overfit(Rule):
    name = "Overfit"
    description = (
        "Checks whether validation loss pulls away from training loss (the model memorises "
        "the training set)."
    )
    recommendation = (
        "Add data or augmentation, regularise (dropout, weight decay, label smoothing), use a "
        "smaller model or freeze more layers, stop earlier (early_stopping.patience)."
    )
    defaults = {"ratio": 1.5, "min_gap": 0.2, "patience": 2, "start_epoch": 1}
    # fires on each epoch where val.loss > ratio * train.loss and val.loss - train.loss > min_gap
    # held for `patience` epochs in a row, from `start_epoch` on.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits: list[Hit] = []
        bad, n = 0, 0
        for r in trace.epochs:
            tr, va = r.get("train.loss"), r.get("val.loss")
            if tr is None or va is None or not (math.isfinite(tr) and math.isfinite(va)):
                continue
            if r["epoch"] < self.params["start_epoch"]:
                continue
            n += 1
            if va > self.params["ratio"] * tr and va - tr > self.params["min_gap"]:
                bad += 1
                if bad >= self.params["patience"]:
                    hits.append(
                        (
                            int(r["epoch"]),
                            f"epoch {r['epoch']}: val.loss {va:.4g} vs train.loss {tr:.4g}",
                        )
                    )
            else:
                bad = 0
        return hits, n


@register
class Overtraining(Rule):
    name = "Overtraining"
    description = "Checks whether the validation loss stopped improving while training goes on."
    recommendation = (
        "Use early stopping (early_stopping.patience), fewer epochs or a decaying learning "
        "rate; best.pt keeps the best epoch."
    )
    defaults = {"patience": 3, "min_delta": 0.0, "metric": "val.loss"}
    # fires on each epoch that comes `patience` or more epochs after the best value of
    # `metric` (lower is better) improved by more than `min_delta`.

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        hits: list[Hit] = []
        best, best_epoch, n = math.inf, 0, 0
        for r in trace.epochs:
            v = r.get(self.params["metric"])
            if v is None or not math.isfinite(v):
                continue
            n += 1
            if v < best - self.params["min_delta"]:
                best, best_epoch = v, int(r["epoch"])
            elif int(r["epoch"]) - best_epoch >= self.params["patience"]:
                hits.append((int(r["epoch"]), f"epoch {r['epoch']}: {self.params['metric']} {v:.4g}, "
                             f"best {best:.4g} at epoch {best_epoch}"))  # fmt: skip
        return hits, n


@register
class InitialLoss(Rule):
    name = "InitialLoss"
    description = "Checks that the first step's loss is close to ln(C) for C balanced classes (classification and counting)."
    recommendation = (
        "A far-off first loss means a bad initialisation of the head (large weights or "
        "biases), unnormalised inputs, or labels that do not match the classes."
    )
    defaults = {"tolerance": 0.5}
    # fires when loss(step 1) is outside ln(C) * (1 ± tolerance).

    def check(self, trace: Trace) -> tuple[list[Hit], int]:
        c = int(trace.meta.get("classes") or 0)
        first = next((r for r in trace.steps if r["s"] == 1), None)
        try:  # the task says what an untrained model's loss is (detection's has no baseline)
            expected = get_task(str(trace.meta.get("task") or "classify")).loss_baseline(c)
        except UnknownNameError:  # a plug-in task not loaded in this process
            expected = None
        if expected is None or first is None or first.get("loss") is None:
            return [], 0
        loss = float(first["loss"])
        tol = self.params["tolerance"]
        if not math.isfinite(loss) or abs(loss - expected) > tol * expected:
            return [(1, f"first loss {loss:.4g}, expected about ln({c}) = {expected:.4g}")], 1
        return [], 1
