"""What a prediction becomes per task (inference.outputs), and the inference/evaluation/
serving hooks every registered task answers."""

from __future__ import annotations

import numpy as np
import pytest

from cvpipe.engine.runs import ModelCard
from cvpipe.evaluation.base import Evaluator
from cvpipe.inference.outputs import BoxOutputs, ClassOutputs, Outputs
from cvpipe.models.preprocess import Preprocess
from cvpipe.tasks.registry import get_task, task_names


def card(task: str, classes: list[str]) -> ModelCard:
    pre = Preprocess(input_size=32, resize_size=32)
    return ModelCard(task=task, classes=classes, model="m", head={}, preprocess=pre, input_size=32)


@pytest.mark.parametrize("name", task_names())
def test_every_task_answers_the_inference_and_evaluation_hooks(name: str) -> None:
    task = get_task(name)
    assert isinstance(task.outputs(), Outputs)
    ev = task.evaluator()
    assert isinstance(ev, Evaluator) and ev.task == name
    assert isinstance(task.exportable, bool) and isinstance(task.whole_images, bool)


def test_builtin_tasks_choose_their_outputs_export_and_serving() -> None:
    assert [get_task(n).exportable for n in ("classify", "count", "detect")] == [True, True, False]
    assert [get_task(n).whole_images for n in ("classify", "count", "detect")] == [
        False,
        False,
        True,
    ]
    assert isinstance(get_task("detect").outputs(), BoxOutputs)
    count = get_task("count").outputs()
    assert isinstance(count, ClassOutputs) and count.counts
    classify = get_task("classify").outputs()
    assert isinstance(classify, ClassOutputs) and not classify.counts


def test_count_response_and_its_predict_row() -> None:
    out = ClassOutputs(counts=True)
    c = card("count", ["1", "2", "3"])
    resp = out.response(c, np.array([0.1, 0.7, 0.2]), 10, 10, top_k=2)
    assert resp["label"] == "2" and resp["count"] == 2 and len(resp["top_k"]) == 2
    assert [d["count"] for d in resp["distribution"]] == [1, 2, 3]
    row = out.response_row("a.jpg", {**resp, "task": "count"})
    assert row == {
        "file": "a.jpg",
        "count": 2,
        "class": "2",
        "confidence": 0.7,
        "top_k": [{"class": "2", "prob": 0.7}, {"class": "3", "prob": 0.2}],
    }
    assert out.csv_header(2) == [
        "file", "count", "class", "confidence", "class1", "prob1", "class2", "prob2", "error",
    ]  # fmt: skip
    assert out.csv_lines(row) == [
        {"file": "a.jpg", "count": 2, "class": "2", "confidence": 0.7,
         "class1": "2", "prob1": 0.7, "class2": "3", "prob2": 0.2}
    ]  # fmt: skip
    assert ClassOutputs().csv_header(1) == [
        "file",
        "class",
        "confidence",
        "class1",
        "prob1",
        "error",
    ]


def test_box_response_clips_counts_and_writes_one_csv_line_per_box() -> None:
    out = BoxOutputs()
    c = card("detect", ["cat", "dog"])
    raw = {
        "boxes": np.array([[-5.0, 2.0, 50.0, 40.0], [1.0, 1.0, 5.0, 5.0], [0, 0, 1, 1]]),
        "scores": np.array([0.3, 0.9, 0.01]),
        "labels": np.array([1, 0, 0]),
    }
    resp = out.response(c, raw, 40, 20, score_threshold=0.5, min_score=0.05)
    assert [d["label"] for d in resp["detections"]] == ["cat", "dog"]  # best first, 0.01 dropped
    assert resp["detections"][1]["box"] == [0.0, 2.0, 40.0, 20.0]  # clipped to the image
    assert resp["counts"] == {"cat": 1, "dog": 0}
    row = out.response_row("a.jpg", {**resp, "task": "detect"})
    lines = out.csv_lines(row)
    assert [line["label"] for line in lines] == ["cat", "dog"] and lines[0]["x2"] == 5.0
    assert out.csv_lines({"file": "b.jpg", "error": "truncated: x"}) == [
        {"file": "b.jpg", "error": "truncated: x"}
    ]
    assert out.csv_header(3)[:3] == ["file", "label", "score"]
