"""Every registered task answers the whole Task contract sensibly."""

from __future__ import annotations

import dataclasses

import pytest

from cvpipe.data.manifest import Record
from cvpipe.engine.defaults import TaskDefault
from cvpipe.engine.trainer import Run
from cvpipe.errors import UnknownNameError
from cvpipe.tasks import Task, get_task, task_names
from cvpipe.tasks.base import describe

RECORD_FIELDS = {f.name for f in dataclasses.fields(Record)}


def test_builtin_tasks_are_registered() -> None:
    assert {"classify", "count", "detect"} <= set(task_names())
    with pytest.raises(UnknownNameError, match="unknown task 'detcet'; did you mean 'detect'"):
        get_task("detcet")


@pytest.mark.parametrize("name", task_names())
def test_task_contract(name: str) -> None:
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name
    assert task.record_fields and set(task.record_fields) <= RECORD_FIELDS
    assert task.unit in ("images", "objects") and task.models
    assert task.monitor.startswith("val.")
    assert issubclass(task.run_class(), Run)
    assert callable(task.step_function())
    defaults = task.defaults()
    assert defaults and all(isinstance(d, TaskDefault) and d.model for d in defaults)
    assert task.output_classes(["a", "b"]) and describe(task)["name"] == name
    baseline = task.loss_baseline(4)
    assert baseline is None or baseline > 0
    assert task.strata().image_keys([], ["a"]) == [] and task.strata().name
    assert task.evaluator() is not None and task.outputs() is not None
    assert isinstance(task.tunable, bool) and isinstance(task.whole_images, bool)
    assert isinstance(task.exportable, bool) and isinstance(task.data_parallel, bool)


def test_a_task_without_its_answers_cannot_be_built() -> None:
    class Half(Task):
        name = "half"
        record_fields = ("label",)
        models = "halves"

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]


def test_record_hooks_of_the_builtin_tasks() -> None:
    classes = ["1", "2", "5"]
    count, classify, detect = get_task("count"), get_task("classify"), get_task("detect")
    rec = Record("a", "a.jpg", 8, 8, count=5)
    assert count.class_index(rec, classes) == 2 and count.label_error(rec, classes) is None
    assert count.label_error(Record("b", "b.jpg", 8, 8, count=3), classes)[0] == "count"
    assert classify.label_error(Record("c", "c.jpg", 8, 8, label=3), classes)[0] == "label"
    boxes = Record("d", "d.jpg", 8, 8, boxes=[[0, 0, 2, 2], [1, 1, 3, 3]], labels=[0, 2])
    assert detect.record_classes(boxes, classes) == [0, 2]
    assert detect.label_error(Record("e", "e.jpg", 8, 8, boxes=[[0, 0, 2, 2]], labels=[]), classes)
