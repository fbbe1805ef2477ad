"""The Optuna study of a tuning run: sampler, pruner, budget, creation checks, warm start.

:func:`open_study` creates the study or loads it, refusing one made with another space or
objective; :func:`warm_start` queues the best parameters of an earlier study;
:func:`make_sampler` and :func:`make_pruner` follow ``strategy`` and ``pruning``.

Example:
    >>> sampler = make_sampler(config, space)  # doctest: +SKIP
    >>> study = open_study(config, space, url, storage)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping
from typing import Any

import cvpipe.tune.storage as S
from cvpipe.errors import ConfigError
from cvpipe.tune.config import TuneConfig
from cvpipe.tune.space import CategoricalParam, FloatParam, IntParam, SearchSpace

log = logging.getLogger(__name__)


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


def effective_max_trials(config: TuneConfig, space: SearchSpace) -> int:
    if config.strategy == "grid":
        return min(config.max_trials, space.grid_size())
    return config.max_trials


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
