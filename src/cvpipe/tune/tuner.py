"""``tune()``: an Optuna study whose trials are ordinary cvpipe training runs.

Each trial draws parameters from the search space, applies them to the base train config
and calls :func:`cvpipe.engine.trainer.train` into ``OUT/trials/trial_NNNN`` (config,
metrics, checkpoints, model card: it can be evaluated, exported and served like any run).
A callback reports the objective metric after every epoch and stops the run when the
pruner says so. A trial that raises is recorded as FAIL with its error (user attribute
``error``) and the study goes on.

``max_parallel`` > 1 starts that many worker processes on this machine, each running the
same study against the same storage (GPUs handed out round-robin through
``CUDA_VISIBLE_DEVICES``); workers on other machines may join through a shared
PostgreSQL storage. The budget is shared: a trial counts once it is complete, pruned or
failed by its own error; a trial interrupted by a killed process is failed (heartbeat or
dead pid) and its parameters queued again. So after ``kill -9`` the same command resumes:
completed trials are kept, numbering continues, the budget is filled.

Head-only trials on a frozen backbone share the frozen-feature cache
(:mod:`cvpipe.engine.features`): the first trial computes the features, the others read
them, so a study costs little more than one feature pass.

Example:
    >>> cfg = load_config(TuneConfig, "recipes/seed001_tune.yaml")  # doctest: +SKIP
    >>> result = tune(cfg)  # doctest: +SKIP
    >>> result.best.params  # doctest: +SKIP
    {'optimizer.lr': 0.0021, 'batch_size': 32}
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvpipe.config import dump_config
from cvpipe.engine.callbacks import Callback, TrainState
from cvpipe.errors import ConfigError, CvpipeError
from cvpipe.io import read_json, write_json
from cvpipe.tune import storage as S
from cvpipe.tune.config import TuneConfig, validate_tune_config
from cvpipe.tune.space import CategoricalParam, FloatParam, IntParam, SearchSpace, apply_params

log = logging.getLogger(__name__)

TrialHook = Callable[[Any], None]


class TrialFailed(CvpipeError):
    """A trial's run raised; the trial is recorded as FAIL and the study goes on."""


class BudgetReached(TrialFailed):
    """Other workers used the last slots first; this trial is skipped without training."""


class ObjectiveNotRecorded(ConfigError):
    """The run does not record the objective metric: every trial would fail, so stop."""


@dataclass
class TrialSummary:
    """One trial as the results table shows it."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run_dir: str | None
    error: str | None = None


@dataclass
class TuneResult:
    """What :func:`tune` left behind.

    Attributes:
        out: the output directory.
        study: study name; ``storage``: its URL (no password).
        counts: trials per state (``COMPLETE``, ``PRUNED``, ``FAIL``, ...).
        best: the best trial, or None when none completed.
        csv, report: ``OUT/results.csv`` and ``OUT/report.html``.
    """

    out: Path
    study: str
    storage: str
    counts: dict[str, int]
    best: TrialSummary | None
    csv: Path | None = None
    report: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------- samplers
def make_sampler(config: TuneConfig, space: SearchSpace, worker: int = 0) -> Any:
    """The Optuna sampler for ``config.strategy`` (seeded ``seed + worker``)."""
    optuna = S.import_optuna()
    seed = config.seed + worker
    if config.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.strategy == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    startup = max(2, min(10, config.max_trials // 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, constant_liar=config.max_parallel > 1
        )


def make_pruner(config: TuneConfig, base: Mapping[str, Any], space: SearchSpace) -> Any:
    """The Optuna pruner: median, hyperband or none (``NopPruner``)."""
    optuna = S.import_optuna()
    p = config.pruning
    kind = "hyperband" if config.strategy == "hyperband" else p.pruner
    if not p.enabled or kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        epochs = [int(base.get("epochs", 10))]
        ep = space.params.get("epochs")
        if isinstance(ep, (IntParam, CategoricalParam)):
            epochs += [int(v) for v in ep.probes()]
        top = max(epochs)
        return optuna.pruners.HyperbandPruner(
            min_resource=min(top, p.warmup_epochs + 1), max_resource=top, reduction_factor=3
        )
    # steps are 1-based epochs; optuna prunes from step n_warmup_steps on
    return optuna.pruners.MedianPruner(
        n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs + 1
    )


# ------------------------------------------------------------------------- budget
def _counts(t: Any, states: Any) -> bool:
    """Does trial ``t`` use a slot of the budget (or may it, while running)?"""
    if t.state in (states.COMPLETE, states.PRUNED, states.RUNNING):
        return True
    return t.state == states.FAIL and "error" in t.user_attrs


def budget_used(study: Any, before: int | None = None) -> int:
    """Trials using the budget (complete, pruned, running, failed by their own error).

    Args:
        before: count only trials numbered below this one.
    """
    states = S.import_optuna().trial.TrialState
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if _counts(t, states) and (before is None or t.number < before)
    )


def effective_max_trials(config: TuneConfig, space: SearchSpace) -> int:
    if config.strategy == "grid":
        return min(config.max_trials, space.grid_size())
    return config.max_trials


# ------------------------------------------------------------------------- objective
def objective_value(
    history: list[dict[str, Any]], metric: str, direction: str, reduce: str
) -> float:
    """The trial's score from its epoch rows (best or last epoch).

    Raises:
        ObjectiveNotRecorded: the rows do not hold ``metric``.
        TrialFailed: no epoch ran, or every value is NaN.
    """
    if not history:
        raise TrialFailed("the run recorded no epoch")
    if metric not in history[-1]:
        keys = sorted(k for k in history[-1] if k not in ("kind", "epoch"))
        raise ObjectiveNotRecorded(
            f"objective.metric {metric!r} is not recorded by the run; recorded: {', '.join(keys)}"
        )
    values = [float(r[metric]) for r in history if r.get(metric) is not None]
    finite = [v for v in values if not math.isnan(v)]
    if reduce == "last":
        value = values[-1]
    elif finite:
        value = min(finite) if direction == "minimize" else max(finite)
    else:
        value = float("nan")
    if math.isnan(value):
        raise TrialFailed(f"objective {metric} is NaN")
    return value


class TrialReporter(Callback):
    """Reports the objective after each epoch to the Optuna trial; stops a pruned run.

    Args:
        trial: the live ``optuna.Trial``.
        metric: the objective metric.
        prune: ask the pruner after each report.
    """

    def __init__(self, trial: Any, metric: str, prune: bool) -> None:
        self.trial = trial
        self.metric = metric
        self.prune = prune
        self.pruned_at: int | None = None

    def on_epoch_end(self, state: TrainState, row: dict[str, Any]) -> None:
        if self.metric not in row:
            keys = ", ".join(sorted(k for k in row if k not in ("kind", "epoch")))
            raise ObjectiveNotRecorded(
                f"objective.metric {self.metric!r} is not recorded by the run; recorded: {keys}"
            )
        value = float(row[self.metric])
        epoch = int(row.get("epoch", state.epoch + 1))
        if not math.isnan(value):
            self.trial.report(value, epoch)
        if self.prune and self.trial.should_prune():
            self.pruned_at = epoch
            state.stop = True
            state.stop_reason = f"pruned by the tuner at epoch {epoch} ({self.metric}={value:.4g})"


class TrialObjective:
    """The objective Optuna calls: one training run per trial."""

    def __init__(
        self,
        config: TuneConfig,
        base: dict[str, Any],
        space: SearchSpace,
        out: Path,
        max_trials: int,
    ) -> None:
        self.config = config
        self.base = base
        self.space = space
        self.out = out
        self.max_trials = max_trials
        self.direction = config.objective.resolved_direction
        self.identity = S.worker_identity()
        self.tracking = tracking_of(base)
        self.parent_run_id: str | None = None
        if self.tracking.enabled:
            from cvpipe.tracking.study import study_parent

            self.parent_run_id = study_parent(self.tracking, config.study_name, out)

    def __call__(self, trial: Any) -> float:
        from pydantic import ValidationError

        from cvpipe.engine.config import TrainConfig
        from cvpipe.engine.trainer import train

        optuna = S.import_optuna()
        for k, v in self.identity.items():
            trial.set_user_attr(k, v)
        run_dir = (self.out / "trials" / f"trial_{trial.number:04d}").resolve()
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("dataset", str(Path(str(self.config.dataset)).resolve()))
        if budget_used(trial.study, before=trial.number) >= self.max_trials:
            trial.set_user_attr("skipped", "max_trials already used by other workers")
            raise BudgetReached(f"trial {trial.number}: budget of {self.max_trials} trials used")
        params = self.space.suggest(trial)
        try:
            cfg = TrainConfig.model_validate(apply_params(self.base, params))
        except ValidationError as exc:
            return self._fail(
                trial, f"invalid parameter combination {params}: {exc.errors()[0]['msg']}"
            )
        trial.set_user_attr("config", cfg.model_dump(mode="json"))
        reporter = TrialReporter(trial, self.config.objective.metric, self.config.pruning.enabled)
        callbacks: list[Callback] = [reporter]
        if cfg.tracking.enabled:
            from cvpipe.tracking.callback import TrackingCallback

            callbacks.append(
                TrackingCallback(
                    cfg.tracking, parent_run_id=self.parent_run_id, run_name=run_dir.name,
                    tags={"cvpipe.study": self.config.study_name, "cvpipe.trial": trial.number,
                          **{f"param.{k}": v for k, v in params.items()}},
                )
            )  # fmt: skip
        log.info("trial %d: %s → %s", trial.number, _fmt_params(params), run_dir)
        try:
            result = train(str(self.config.dataset), run_dir, cfg, callbacks=callbacks)
            obj = self.config.objective
            value = objective_value(result.history, obj.metric, self.direction, obj.reduce)
        except (ObjectiveNotRecorded, TrialFailed) as exc:
            trial.set_user_attr("error", str(exc))
            raise
        except Exception as exc:  # any run failure: record it, keep the study going
            return self._fail(trial, f"{type(exc).__name__}: {exc}")
        trial.set_user_attr("epochs_run", len(result.history))
        trial.set_user_attr("best_epoch", result.best_epoch)
        if reporter.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at epoch {reporter.pruned_at}")
        return value

    def _fail(self, trial: Any, message: str) -> float:
        trial.set_user_attr("error", message[:2000])
        log.warning("trial %d failed: %s", trial.number, message)
        raise TrialFailed(message)


def tracking_of(base: Mapping[str, Any]) -> Any:
    """The :class:`~cvpipe.tracking.config.TrackingConfig` the trials run with."""
    from cvpipe.tracking.config import TrackingConfig

    return TrackingConfig.model_validate(base.get("tracking") or {})


def _fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


# ------------------------------------------------------------------------- study
def _study_attrs(config: TuneConfig, space: SearchSpace) -> dict[str, Any]:
    obj = config.objective
    return {
        "cvpipe.space": space.to_json(),
        "cvpipe.objective": {
            "metric": obj.metric,
            "direction": obj.resolved_direction,
            "reduce": obj.reduce,
        },
    }


def open_study(config: TuneConfig, space: SearchSpace, url: str, storage: Any) -> Any:
    """Create the study, or load it and check it was made with the same space and objective.

    Raises:
        ConfigError: an existing study with another space, objective or direction.
    """
    optuna = S.import_optuna()
    name = config.study_name
    direction = config.objective.resolved_direction
    study = optuna.create_study(
        storage=storage, study_name=name, direction=direction, load_if_exists=True
    )
    attrs = _study_attrs(config, space)
    existing = study.user_attrs
    if "cvpipe.space" not in existing:
        for k, v in attrs.items():
            study.set_user_attr(k, v)
    else:
        for k, v in attrs.items():
            if json.dumps(existing.get(k), sort_keys=True) != json.dumps(v, sort_keys=True):
                what = k.split(".", 1)[1]
                raise ConfigError(
                    f"study {name!r} in {S.redact(url)} was created with another {what} "
                    f"({existing.get(k)}); use a new --study name or the original config"
                )
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"study {name!r} maximises/minimises the other way ({study.direction.name.lower()}); "
            "use a new --study name"
        )
    study.set_user_attr("cvpipe.max_trials", config.max_trials)
    return study


def warm_start(study: Any, ref: str, space: SearchSpace, storage_url: str) -> dict[str, Any] | None:
    """Queue the best parameters of an earlier study (those inside this space).

    Raises:
        ConfigError: the earlier study cannot be found or has no completed trial.
    """
    optuna = S.import_optuna()
    if study.get_trials(deepcopy=False):
        return None  # only a new study is warm-started
    try:
        sref = S.resolve_study(ref)
    except ConfigError:
        sref = S.resolve_study(ref, storage=storage_url)
    old = S.load_study(sref)
    done = old.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        raise ConfigError(f"warm_start_from: study {sref.name!r} has no completed trial")
    params = {k: v for k, v in old.best_trial.params.items() if _inside(space, k, v)}
    if not params:
        log.warning("warm_start_from %s: none of its best parameters fits this space", ref)
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.enqueue_trial(
            params, user_attrs={"warm_start_from": f"{sref.name}#{old.best_trial.number}"}
        )
    log.info("warm start: first trial uses %s (best of %s)", params, sref.name)
    return params


def _inside(space: SearchSpace, key: str, value: Any) -> bool:
    p = space.params.get(key)
    if isinstance(p, (FloatParam, IntParam)):
        return isinstance(value, (int, float)) and p.low <= value <= p.high
    if isinstance(p, CategoricalParam):
        return value in p.values()
    return False


# ------------------------------------------------------------------------- workers
def run_worker(config: TuneConfig, worker: int = 0, on_trial: TrialHook | None = None) -> None:
    """Run trials of the study until its budget is used (one worker; any machine).

    Raises:
        ObjectiveNotRecorded: the run never records the objective metric.
        ConfigError: the study or storage does not fit the config.
    """
    optuna = S.import_optuna()
    base, space, _ = validate_tune_config(config)
    out = Path(config.out)
    url = S.normalize_url(config.storage) if config.storage else S.default_url(out)
    retry = S.retry_callback(config.max_retries)
    storage = S.open_storage(
        url, heartbeat_s=config.heartbeat_s, grace_s=config.grace, on_stale=retry
    )
    study = optuna.load_study(
        study_name=config.study_name,
        storage=storage,
        sampler=make_sampler(config, space, worker),
        pruner=make_pruner(config, base, space),
    )
    max_trials = effective_max_trials(config, space)
    objective = TrialObjective(config, base, space, out, max_trials)
    callbacks = [lambda _study, ft: on_trial(ft)] if on_trial else None
    while True:
        S.fail_dead_trials(study, storage, retry, config.grace)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if budget_used(study) >= max_trials:
            running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if not running:
                break
            time.sleep(min(2.0, config.heartbeat_s))  # a worker elsewhere may still fail
            continue
        study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=callbacks)


def _gpu_ids(device: str) -> list[str]:
    if device == "cpu":
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [x.strip() for x in env.split(",") if x.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch CUDA at all
        return []


def _spawn_workers(
    config: TuneConfig, base: Mapping[str, Any], out: Path
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    gpus = _gpu_ids(str(base.get("device", "auto")))
    threads = max(1, (os.cpu_count() or 1) // config.max_parallel)
    (out / "workers").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    procs = []
    code = (
        "import sys; from cvpipe.tune.tuner import worker_main; sys.exit(worker_main(sys.argv[1]))"
    )
    for i in range(config.max_parallel):
        spec = out / "workers" / f"worker_{i}.json"
        write_json(
            spec,
            {"config": config.model_dump(mode="json"), "worker": i, "parent": os.getpid(),
             "threads": threads, "log_level": logging.getLogger("cvpipe").getEffectiveLevel()},
        )  # fmt: skip
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        logfile = out / "logs" / f"worker_{i}.log"
        with open(logfile, "ab") as lf:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, str(spec)],
                stdout=lf,
                stderr=subprocess.STDOUT,
                env=env,
            )
        log.info(
            "worker %d: pid %d%s, log %s",
            i,
            proc.pid,
            f", GPU {env['CUDA_VISIBLE_DEVICES']}" if gpus else "",
            logfile,
        )
        procs.append((proc, logfile))
    return procs


def _watch(
    study: Any, procs: list[tuple[subprocess.Popen[bytes], Path]], on_trial: TrialHook | None
) -> None:
    optuna = S.import_optuna()
    finished = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    )
    seen = {t.number for t in study.get_trials(deepcopy=False, states=finished)}
    try:
        while True:
            alive = any(p.poll() is None for p, _ in procs)
            for t in study.get_trials(deepcopy=False, states=finished):
                if t.number not in seen:
                    seen.add(t.number)
                    if on_trial:
                        on_trial(t)
            if not alive:
                break
            time.sleep(0.5)
    except BaseException:
        for p, _ in procs:
            if p.poll() is None:
                p.terminate()
        for p, _ in procs:
            p.wait(timeout=30)
        raise
    bad = [(p, lf) for p, lf in procs if p.returncode != 0]
    if bad:
        p, lf = bad[0]
        tail = (
            lf.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            if lf.is_file()
            else []
        )
        raise CvpipeError(
            f"{len(bad)} of {len(procs)} tuning workers failed (exit {p.returncode}): "
            f"{tail[0] if tail else 'no output'}; see {lf}"
        )


def _parent_watchdog(parent: int) -> None:
    """End this worker when the process that started it is gone (kill -9 of the tuner)."""
    try:  # Linux: the kernel signals us as soon as the parent dies
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # other systems: the polling thread below suffices
        pass
    if os.getppid() != parent:
        os._exit(137)

    def poll() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(137)
            time.sleep(1.0)

    threading.Thread(target=poll, name="cvpipe-tune-parent-watchdog", daemon=True).start()


def worker_main(spec_path: str) -> int:
    """Entry point of a worker process started by :func:`tune` (``max_parallel`` > 1)."""
    spec = read_json(spec_path)
    _parent_watchdog(int(spec["parent"]))
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("cvpipe").setLevel(int(spec.get("log_level", logging.INFO)))
    quiet_optuna()
    try:
        import torch

        torch.set_num_threads(int(spec["threads"]))
    except ImportError:  # pragma: no cover - torch is required to train anyway
        pass
    try:
        run_worker(TuneConfig.model_validate(spec["config"]), int(spec["worker"]))
    except CvpipeError as exc:
        logging.getLogger("cvpipe.tune").error("worker %s: %s", spec["worker"], exc)
        return exc.exit_code
    return 0


def quiet_optuna(level: int = logging.WARNING) -> None:
    """Route Optuna's log lines through ``logging`` (no own handler) at ``level``.

    Called by the command line and worker processes, never at import time.
    """
    optuna = S.import_optuna()
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    logging.getLogger("optuna").setLevel(level)


# ------------------------------------------------------------------------- entry point
def tune(config: TuneConfig, *, on_trial: TrialHook | None = None) -> TuneResult:
    """Run (or resume) a hyperparameter study.

    Args:
        config: the resolved :class:`TuneConfig`.
        on_trial: called with each trial (``optuna.trial.FrozenTrial``) as it finishes.

    Returns:
        A :class:`TuneResult` (counts, best trial, results CSV and HTML report).

    Raises:
        ConfigError: bad space, objective, base config or storage; a study of the same
            name made with another space.
        DatasetError: the dataset cannot be loaded or trained.
        CvpipeError: a worker process failed.
    """
    from cvpipe.tune.report import summarize, write_csv, write_html

    base, space, task = validate_tune_config(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    url = S.normalize_url(config.storage) if config.storage else S.default_url(out)
    dump_config(config, out / "tune.yaml")
    S.write_meta(out, url, config.study_name, config.model_dump(mode="json"))
    retry = S.retry_callback(config.max_retries)
    storage = S.open_storage(
        url, heartbeat_s=config.heartbeat_s, grace_s=config.grace, on_stale=retry
    )
    study = open_study(config, space, url, storage)
    if config.warm_start_from:
        warm_start(study, config.warm_start_from, space, url)
    S.fail_dead_trials(study, storage, retry, config.grace)
    tracking = tracking_of(base)
    if tracking.enabled:  # the parent run exists before any worker starts a trial
        from cvpipe.tracking.study import study_parent

        study_parent(tracking, config.study_name, out)
    log.info(
        "study %s in %s: %d trials so far, budget %d, %d worker(s), task %s",
        config.study_name, S.redact(url), len(study.get_trials(deepcopy=False)),
        effective_max_trials(config, space), config.max_parallel, task,
    )  # fmt: skip
    if config.max_parallel == 1:
        run_worker(config, 0, on_trial)
    else:
        _watch(study, _spawn_workers(config, base, out), on_trial)
    rows = summarize(study)
    csv = write_csv(rows, out / "results.csv")
    report = write_html(study, out / "report.html", rows) if config.report else None
    if tracking.enabled:
        from cvpipe.tracking.study import finish_study

        finish_study(tracking, out, rows, [csv, report])
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    best = next((r for r in rows if r.state == "COMPLETE"), None)
    summary = (
        TrialSummary(best.number, best.state, best.value, best.params, best.run_dir)
        if best
        else None
    )
    return TuneResult(out, config.study_name, S.redact(url), counts, summary, csv, report)
