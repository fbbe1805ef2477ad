"""Tuning workers: processes that run a study's trials until its budget is used.

:func:`run_worker` is one worker (this process, or one on any machine sharing the
storage). With ``max_parallel`` > 1, :func:`spawn_workers` starts that many worker
processes (:func:`worker_main`; GPUs handed out round-robin through
``CUDA_VISIBLE_DEVICES``, compute threads shared), :func:`watch` reports their finished
trials and fails when one of them does; a worker ends with the process that started it.

Example:
    >>> run_worker(config, worker=0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cvpipe.tune.storage as S
from cvpipe.errors import CvpipeError
from cvpipe.io import read_json, write_json
from cvpipe.tune.config import TuneConfig, validate_tune_config
from cvpipe.tune.study import effective_max_trials, make_pruner, make_sampler
from cvpipe.tune.trial import TrialFailed, TrialObjective, budget_used

log = logging.getLogger(__name__)

TrialHook = Callable[[Any], None]


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


def spawn_workers(
    config: TuneConfig, base: Mapping[str, Any], out: Path
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    gpus = _gpu_ids(str(base.get("device", "auto")))
    threads = max(1, (os.cpu_count() or 1) // config.max_parallel)
    (out / "workers").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    procs = []
    code = "import sys; from cvpipe.tune.workers import worker_main; sys.exit(worker_main(sys.argv[1]))"
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


def watch(
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
