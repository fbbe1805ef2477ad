"""The tuning part of the Task contract: objectives and model names a study may use, per task."""

from __future__ import annotations

import pytest

from cvpipe.errors import ConfigError
from cvpipe.tasks import get_task
from cvpipe.tasks.registry import task_names
from cvpipe.tune.config import check_model_names, check_objective
from cvpipe.tune.space import SearchSpace


@pytest.mark.parametrize("name", task_names())
def test_every_task_answers_the_tuning_questions(name: str) -> None:
    task = get_task(name)
    assert isinstance(task.tunable, bool)
    assert all(m.startswith(("train.", "val.")) or "." not in m for m in task.recorded_metrics)
    assert all(isinstance(m, str) for m in task.objective_names())
    for metric in task.recorded_metrics:
        check_objective(metric, name)  # everything a run records is a valid objective


def test_listed_metrics_are_checked_before_the_first_trial() -> None:
    assert "val.accuracy" in get_task("count").recorded_metrics  # count trains as classify
    with pytest.raises(ConfigError, match="never records 'val.mAP'"):
        check_objective("val.mAP", "classify")


def test_detection_objectives_are_checked_at_the_first_epoch_with_a_case_hint() -> None:
    assert get_task("detect").recorded_metrics == ()
    check_objective("val.mAP50", "detect")
    check_objective("val.something_new", "detect")  # left to the first epoch
    with pytest.raises(ConfigError, match="records 'val.mAP', not 'val.map'"):
        check_objective("val.map", "detect")
    with pytest.raises(ConfigError, match="not a recorded metric name"):
        check_objective("mAP", "detect")


def test_model_names_are_asked_of_the_task() -> None:
    space = SearchSpace.from_mapping({"model": ["resnet18", "resnet5"]})
    with pytest.raises(ConfigError, match="space.model: unknown model 'resnet5'"):
        check_model_names({"model": "resnet18"}, space, "classify")
    with pytest.raises(ConfigError, match="train.model: unknown model"):
        check_model_names({"model": "vgg1"}, SearchSpace.from_mapping({"lr": [0.1]}), "count")
    check_model_names({"model": "ssdlite320_mobilenet_v2"}, space, "detect")  # run checks it
