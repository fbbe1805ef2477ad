"""Benchmark class ids → names → dataset classes.

Benchmark labels are class ids named by a label map: the 90-id COCO map
(:data:`cvpipe.models.coco_assets.COCO_LABELS`, the TF Object Detection API / torchvision
numbering) by default, or a file (text: one name per line, line 1 = id 1; YAML/JSON:
``{id: name}``). A class-map file (YAML or JSON, ``{"airplane": "Airplane"}``) maps
benchmark class names to dataset class names; several benchmark classes may map to one
dataset class, and detections of unmapped classes are dropped. Without a class map,
benchmark classes whose name equals a dataset class exactly are kept (logged), and none
matching is an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cvpipe.errors import ConfigError
from cvpipe.models.coco_assets import COCO_LABELS
from cvpipe.registry import suggest

log = logging.getLogger(__name__)


def _read_mapping_file(path: str | Path, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} file not found")
    text = p.read_text(encoding="utf-8")
    try:
        return json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: invalid {what} ({exc}); expected YAML or JSON") from None


def read_label_map(path: str | Path | None) -> dict[int, str]:
    """A benchmark's class id → name map: COCO's 90 ids by default, or a file.

    Args:
        path: ``None``/``"coco"`` (built-in), a ``.txt`` file (one name per line, line 1
            is id 1; blank lines keep their id unused), or YAML/JSON ``{id: name}``.

    Raises:
        ConfigError: missing file or a malformed map.
    """
    if path is None or str(path).lower() in ("coco", "coco90"):
        return dict(COCO_LABELS)
    p = Path(path)
    if p.suffix.lower() == ".txt":
        if not p.is_file():
            raise ConfigError(f"{p}: label map file not found")
        lines = p.read_text(encoding="utf-8").splitlines()
        return {i: name.strip() for i, name in enumerate(lines, start=1) if name.strip()}
    data = _read_mapping_file(p, "label map")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: a label map must map class ids to names, e.g. {{1: person}}")
    try:
        return {int(k): str(v) for k, v in data.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{p}: label map keys must be integer class ids") from None


def read_class_map(
    path: str | Path | None, benchmark_names: Sequence[str], classes: Sequence[str]
) -> dict[str, str]:
    """Benchmark class name → dataset class name.

    Args:
        path: YAML/JSON mapping file, or None (identical names only).
        benchmark_names: the benchmark's class names.
        classes: the dataset's class names.

    Raises:
        ConfigError: unreadable file, a name unknown on either side (with suggestions),
            or no class in common.
    """
    bench = set(benchmark_names)
    if path is None:
        same = {c: c for c in classes if c in bench}
        if not same:
            raise ConfigError(
                f"no benchmark class is named like a dataset class {list(classes)}; give a "
                'class-map file (YAML or JSON), e.g. {"airplane": "Airplane"}'
            )
        log.info("benchmark classes kept by identical name: %s", sorted(same))
        return same
    data = _read_mapping_file(path, "class map")
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"{path}: a class map maps benchmark class names to dataset class names, "
            'e.g. {"airplane": "Airplane"}'
        )
    out: dict[str, str] = {}
    for src, dst in data.items():
        src, dst = str(src), str(dst)
        if src not in bench:
            raise ConfigError(
                f"{path} [{src}]: not a benchmark class; {suggest(src, sorted(bench))}"
                f"the benchmark has {len(bench)} classes (e.g. {', '.join(sorted(bench)[:5])})"
            )
        if dst not in classes:
            raise ConfigError(
                f"{path} [{src}]: {dst!r} is not a dataset class; "
                f"{suggest(dst, list(classes))}dataset classes: {', '.join(classes)}"
            )
        out[src] = dst
    return out


class LabelMapper:
    """Maps benchmark class ids to dataset class indices (-1: dropped)."""

    def __init__(
        self, labels: Mapping[int, str], mapping: Mapping[str, str], classes: Sequence[str]
    ):
        index = {c: i for i, c in enumerate(classes)}
        top = max(labels, default=0)
        self.table = np.full(top + 2, -1, dtype=np.int64)
        for k, name in labels.items():
            if name in mapping:
                self.table[k] = index[mapping[name]]

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids).astype(np.int64).reshape(-1)
        ok = (ids >= 0) & (ids < len(self.table))
        out = np.full(ids.shape, -1, dtype=np.int64)
        out[ok] = self.table[ids[ok]]
        return out
