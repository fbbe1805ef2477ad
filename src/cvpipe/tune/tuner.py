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

The pieces: a trial (:mod:`cvpipe.tune.trial`), the study (:mod:`cvpipe.tune.study`),
the worker processes (:mod:`cvpipe.tune.workers`), storage (:mod:`cvpipe.tune.storage`)
and the results (:mod:`cvpipe.tune.report`); this module runs them in order.

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

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cvpipe.tune.storage as S
from cvpipe.config import dump_config
from cvpipe.tune.config import TuneConfig, validate_tune_config
from cvpipe.tune.study import effective_max_trials, open_study, warm_start
from cvpipe.tune.trial import tracking_of
from cvpipe.tune.workers import TrialHook, run_worker, spawn_workers, watch

log = logging.getLogger(__name__)


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
        watch(study, spawn_workers(config, base, out), on_trial)
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
