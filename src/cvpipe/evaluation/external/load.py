"""Benchmark detectors by name or file, and their evaluation without training.

:func:`load_benchmark` turns a spec into a detection predictor whose labels are the
dataset's classes: the built-in ``ssd_mobilenet_v2_coco`` (OpenCV DNN where OpenCV reads
TensorFlow graphs, else its converted PyTorch model), an ``.onnx`` file (ONNX Runtime) or
a TensorFlow frozen graph ``.pb`` (OpenCV DNN). :func:`evaluate_benchmark` scores it on a
dataset split exactly like a trained detect run (``cvpipe eval --benchmark-model``).

Example:
    >>> det = load_benchmark("ssd_mobilenet_v2_coco", classes=["Airplane"],
    ...                      class_map="planes.yaml")  # doctest: +SKIP
    >>> det.predict_images([pil])[0]["labels"]  # dataset class indices  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cvpipe.data.manifest import Dataset
from cvpipe.errors import ConfigError, DatasetError
from cvpipe.evaluation.base import EvalResult
from cvpipe.evaluation.detect import DetectEvaluator, evaluate_detector
from cvpipe.evaluation.external.detectors import ExternalDetector, OnnxDetector, OpenCVDetector
from cvpipe.evaluation.external.labels import read_class_map, read_label_map
from cvpipe.evaluation.selection import select_eval_data
from cvpipe.models.coco_assets import BUILTIN_GRAPHS, builtin_files
from cvpipe.registry import suggest
from cvpipe.tasks.registry import get_task


def load_benchmark(
    spec: str,
    *,
    classes: Sequence[str],
    class_map: str | Path | None = None,
    config: str | Path | None = None,
    labels: str | Path | None = None,
    input_size: int | None = None,
) -> ExternalDetector:
    """Load a benchmark detector whose labels are ``classes`` (the dataset's).

    Args:
        spec: a built-in name (``ssd_mobilenet_v2_coco``), an ``.onnx`` file, or a
            TensorFlow frozen graph ``.pb`` (OpenCV DNN).
        classes: dataset class names.
        class_map: YAML/JSON benchmark-name → dataset-name file (module docstring).
        config: the ``.pbtxt`` text graph of a ``.pb`` (default: the only ``.pbtxt``
            beside it).
        labels: label map (default: the 90 COCO ids).
        input_size: square input side of a frozen graph (default 300).

    Raises:
        ConfigError: unknown spec, missing files, bad label or class maps.
        MissingDependencyError: OpenCV or the built-in's package missing.
        CheckpointError: the model cannot be loaded.
    """
    label_map = read_label_map(labels)
    mapping = read_class_map(class_map, sorted(set(label_map.values())), classes)
    if spec in BUILTIN_GRAPHS:
        model, cfg, size = builtin_files(spec)
        from cvpipe.evaluation.external.coco import ConvertedCocoDetector, opencv_reads_tensorflow

        if not opencv_reads_tensorflow():  # OpenCV 5 or none: the same graph, converted
            return ConvertedCocoDetector(
                model, classes=classes, mapping=mapping, labels=label_map, name=spec
            )
        return OpenCVDetector(
            model, cfg, classes=classes, mapping=mapping, labels=label_map,
            input_size=input_size or size, name=spec,
        )  # fmt: skip
    p = Path(spec)
    if p.suffix.lower() == ".onnx":
        return OnnxDetector(p, classes=classes, mapping=mapping, labels=label_map)
    if p.suffix.lower() == ".pb":
        if config is None:
            found = sorted(p.parent.glob("*.pbtxt")) if p.parent.is_dir() else []
            if len(found) != 1:
                raise ConfigError(
                    f"{p}: give the OpenCV text graph with --benchmark-config FILE.pbtxt "
                    f"({len(found)} .pbtxt files beside the model)"
                )
            config = found[0]
        return OpenCVDetector(
            p, config, classes=classes, mapping=mapping, labels=label_map,
            input_size=input_size or 300,
        )  # fmt: skip
    raise ConfigError(
        f"benchmark model {spec!r}: expected an .onnx file, a TensorFlow frozen graph .pb, "
        f"or a built-in name ({suggest(spec, list(BUILTIN_GRAPHS))}valid: {', '.join(BUILTIN_GRAPHS)})"
    )


def evaluate_benchmark(
    spec: str,
    *,
    data: str | Path,
    out: str | Path,
    split: str | None = None,
    class_map: str | Path | None = None,
    config: str | Path | None = None,
    score_thresh: float | None = None,
    batch_size: int = 8,
    workers: int = 0,
    report: bool = True,
) -> EvalResult:
    """Evaluate a pretrained benchmark detector without training (seed 000's TF model).

    Args:
        spec: an ``.onnx`` file, a TensorFlow frozen graph ``.pb`` (with ``config``, or
            a ``.pbtxt`` beside it), or a built-in name such as ``ssd_mobilenet_v2_coco``
            (see :func:`load_benchmark`).
        data: the dataset (required: a benchmark has no training dataset).
        out: output folder (metrics.json, predictions.jsonl, report.html).
        split: split (default test, else val).
        class_map: YAML/JSON file mapping benchmark class names to dataset class names
            (unmapped benchmark classes are dropped).
        config: the OpenCV DNN text graph (``.pbtxt``) of a frozen graph.
        score_thresh: drop detections below this score (default: keep all the model
            gives, as for mAP).
        batch_size, workers, report: as for runs.

    Raises:
        ConfigError, MissingDependencyError, CheckpointError: see
            :func:`load_benchmark`.
    """
    if data is None:
        raise ConfigError("a benchmark model needs --data DATASET (it has no training dataset)")
    ds = Dataset.load(data)
    if not isinstance(get_task(ds.task).evaluator(), DetectEvaluator):
        raise DatasetError(f"{ds.root} is a {ds.task!r} dataset; benchmark detectors need 'detect'")
    sel = select_eval_data(ds.root, ds.root, split)  # data given: no run lock is read
    bench = load_benchmark(spec, classes=list(ds.classes), class_map=class_map, config=config)
    if score_thresh is not None:
        bench.set_postprocess(score_thresh=score_thresh)
    return evaluate_detector(
        bench,
        sel,
        out_dir=out,
        source={"benchmark": spec, "class_map": str(class_map) if class_map else None},
        which="pretrained",
        batch_size=batch_size,
        workers=workers,
        report=report,
    )
