"""What ``cvpipe train DS --out RUN`` uses when no model is given: one table, per task.

:data:`TASK_DEFAULTS` lists, per task, the models to try in order with the settings that
go with them (only applied to keys the user left unset). :func:`apply_task_defaults`
picks the first candidate whose pretrained weights resolve on this machine without a
download (an installed package, a cache or the store); when none does, the first one
(its weights are then downloaded, if downloads are allowed). Models without any
pretrained weights (``base_cnn``, ``custom_cnn``) default to ``weights: none``.

Example:
    >>> cfg, note = apply_task_defaults(TrainConfig(), "classify")  # doctest: +SKIP
    >>> cfg.model, cfg.freeze, note  # doctest: +SKIP
    ('tf_efficientnet_lite0', 'frozen', 'model tf_efficientnet_lite0 (default for classify: ...)')
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cvpipe.config import Config
from cvpipe.engine.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskDefault:
    """A default model for a task and the settings that go with it."""

    model: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    why: str = ""


class _TaskDefaults(Mapping[str, tuple[TaskDefault, ...]]):
    """Task name -> its default models (:meth:`cvpipe.tasks.base.Task.defaults`): the one
    table that decides what a newcomer's ``cvpipe train`` runs, kept by the tasks."""

    def __getitem__(self, task: str) -> tuple[TaskDefault, ...]:
        from cvpipe.errors import UnknownNameError
        from cvpipe.tasks.registry import get_task

        try:
            return get_task(task).defaults()
        except UnknownNameError:
            raise KeyError(task) from None

    def __iter__(self) -> Iterator[str]:
        from cvpipe.tasks.registry import task_names

        return iter(task_names())

    def __len__(self) -> int:
        from cvpipe.tasks.registry import task_names

        return len(task_names())


TASK_DEFAULTS: Mapping[str, tuple[TaskDefault, ...]] = _TaskDefaults()


def weights_arch(model: str) -> str:
    """The classifier whose ImageNet weights ``model`` loads (a detector's backbone)."""
    from cvpipe.models.detection import DETECTORS

    return DETECTORS.get(model).backbone if model in DETECTORS else model


def resolves_offline(model: str) -> bool:
    """Whether ``model``'s pretrained weights are on this machine (no download); for a
    default that starts from COCO (``ssd300_mobilenet_v2``), its COCO weights."""
    from cvpipe.models.weights import find_sources

    if model == "ssd300_mobilenet_v2":
        from cvpipe.models.coco_ssd import graph_installed

        return graph_installed()

    try:
        return bool(find_sources(weights_arch(model)))
    except Exception:  # an unknown or broken entry is simply not a candidate
        return False


def has_pretrained(model: str) -> bool:
    """False for models no pretrained weights exist for (custom CNNs)."""
    from cvpipe.models.classification import MODELS, model_meta

    arch = weights_arch(model)
    return not (arch in MODELS and model_meta(arch).family == "custom")


def pick_default(task: str) -> TaskDefault:
    """The task's default model: the first candidate whose weights are here, else the first.

    Raises:
        ConfigError: no default for this task.
    """
    from cvpipe.errors import ConfigError

    candidates = TASK_DEFAULTS.get(task)
    if not candidates:
        raise ConfigError(f"no default model for task {task!r}; give one with --model")
    return next((c for c in candidates if resolves_offline(c.model)), candidates[0])


def _unset_settings(config: Config, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` for the keys the user left unset; a section (``optimizer``...) given
    as a mapping is merged under what the user set inside it, then validated."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        current = getattr(config, key, None)
        if isinstance(value, Mapping) and isinstance(current, Config):
            mine = current.model_dump(exclude_unset=True)
            out[key] = type(current).model_validate({**value, **mine})
        elif key not in config.model_fields_set:
            out[key] = value
    return out


def apply_task_defaults(config: TrainConfig, task: str) -> tuple[TrainConfig, str | None]:
    """Fill in what the user left unset: the task's model (and its settings), and
    ``weights: none`` for models without pretrained weights.

    Returns:
        The config to train with, and a line saying what was chosen (None if nothing).
    """
    update: dict[str, Any] = {}
    note = None
    if not config.model:
        choice = pick_default(task)
        update["model"] = choice.model
        update.update(_unset_settings(config, choice.settings))
        shown = [k for k in choice.settings if k in update]
        extra = ", ".join(
            f"{k} {choice.settings[k]}"
            for k in shown
            if not isinstance(choice.settings[k], Mapping)
        )
        sections = [k for k in shown if isinstance(choice.settings[k], Mapping)]
        if sections:
            extra += f"; {', '.join(sections)} settings of its recipe"
        note = (
            f"model {choice.model}{' (' + extra + ')' if extra else ''}: the default for "
            f"{task} datasets, {choice.why}; choose another with --model (cvpipe models --task {task})"
        )
    model = str(update.get("model", config.model))
    if "weights" not in config.model_fields_set and config.weights and not has_pretrained(model):
        update["weights"] = None
        extra_note = f"{model} has no pretrained weights: trains from scratch (weights none)"
        note = f"{note}; {extra_note}" if note else extra_note
    if not update:
        return config, None
    out = config.model_copy(update=update)
    log.info("%s", note)
    return out, note
