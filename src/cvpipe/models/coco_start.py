"""Start a detector for a dataset's classes from a COCO-trained detector's weights.

:func:`load_coco_start` copies a COCO-trained state_dict into a freshly built
:class:`~cvpipe.models.detection.Detector` whose head has one output per *dataset* class
(plus background):

- every tensor whose name and shape match is kept (backbone, FPN, extra maps, box
  regression, RPN...);
- the **class-dependent** layers (:data:`CLASS_LAYERS`: SSD / SSDlite classification
  head convs, RetinaNet / FCOS ``cls_logits``, Faster R-CNN ``box_predictor.cls_score``
  and ``bbox_pred``) keep the fresh detector's initialisation, except that when dataset
  class names match COCO class names (case-insensitive; ``_``/``-`` count as spaces),
  the matching classes' rows (output channels) are copied from the COCO head, together
  with the background row.

A class-dependent layer's outputs are laid out ``[group][class][block]``: SSD heads and
``cls_logits`` hold ``anchors x classes`` channels (block 1), ``bbox_pred`` holds
``classes x 4`` deltas (block 4). The number of COCO channels is read from the state
itself, so any COCO head (torchvision's 91 channels, TF's 91 with another order) works
given its channel → name table (``coco_labels``, channel 0 = background).

Every other difference is an error: a tensor missing from the state (except BatchNorm's
``num_batches_tracked`` counters, which FrozenBatchNorm weights lack), an unexpected key
or a shape mismatch outside the class-dependent layers means the state is not for this
architecture.

Example:
    >>> det = create_detector("retinanet_resnet50_fpn", num_classes=2)  # doctest: +SKIP
    >>> report = load_coco_start(det, state, coco_labels=torchvision_coco_labels(),
    ...                          classes=["apple", "widget"])  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    kept 320 tensors; class-dependent layers head.classification_head.cls_logits: rows
    from COCO for apple<-coco 53, re-initialised for widget
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from cvpipe.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassLayer:
    """A class-dependent tensor: names matching ``pattern`` (keys of ``Detector.model``),
    outputs laid out ``[group][class][block]`` along dim 0."""

    pattern: str
    block: int = 1


CLASS_LAYERS: tuple[ClassLayer, ...] = (
    ClassLayer(r"^head\.classification_head\.module_list\.\d+\.(weight|bias)$"),  # SSD
    ClassLayer(r"^head\.classification_head\.module_list\.\d+\.1\.(weight|bias)$"),  # SSDlite
    ClassLayer(r"^head\.classification_head\.cls_logits\.(weight|bias)$"),  # RetinaNet, FCOS
    ClassLayer(r"^roi_heads\.box_predictor\.cls_score\.(weight|bias)$"),  # Faster R-CNN
    ClassLayer(r"^roi_heads\.box_predictor\.bbox_pred\.(weight|bias)$", block=4),
)


@dataclass
class CocoStartReport:
    """What :func:`load_coco_start` did.

    Attributes:
        detector: detector name.
        source: where the COCO weights came from (file, URL...).
        kept: tensors copied unchanged from the COCO state.
        class_layers: class-dependent tensors rebuilt for the dataset's classes.
        mapping: dataset class → COCO channel whose rows it starts from.
        coco_names: COCO channel → its name, for the channels used.
        new_classes: dataset classes with freshly initialised rows (no COCO match).
        filled: BatchNorm counters absent from the state (kept at their defaults).
    """

    detector: str
    source: str
    kept: list[str] = field(default_factory=list)
    class_layers: list[str] = field(default_factory=list)
    mapping: dict[str, int] = field(default_factory=dict)
    coco_names: dict[int, str] = field(default_factory=dict)
    new_classes: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)

    @property
    def class_modules(self) -> list[str]:
        """The class-dependent layers (tensor names without ``.weight``/``.bias``), in order."""
        return list(dict.fromkeys(k.rsplit(".", 1)[0] for k in self.class_layers))

    def summary(self) -> str:
        """One line: what was kept, what was re-initialised, which classes came from COCO."""
        layers = _compress(self.class_modules)
        parts = [f"{self.detector}: kept {len(self.kept)} COCO tensors"]
        if self.mapping:
            parts.append(f"class-dependent layers {layers} rebuilt for the dataset's classes")
            pairs = ", ".join(
                f"{c}<-coco {j} ({self.coco_names.get(j, '?')})" for c, j in self.mapping.items()
            )
            parts.append(f"classes {pairs} start from COCO rows (background row kept)")
            if self.new_classes:
                parts.append(f"re-initialised for {', '.join(self.new_classes)}")
        else:
            parts.append(f"re-initialised {layers} (no dataset class is a COCO class)")
        if self.filled:
            parts.append(f"{len(self.filled)} BatchNorm counters absent, kept at defaults")
        if self.source:
            parts.append(f"from {self.source}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe record (model cards)."""
        return {
            "source": self.source,
            "kept": len(self.kept),
            "class_layers": self.class_modules,
            "mapping": {c: int(j) for c, j in self.mapping.items()},
            "new_classes": list(self.new_classes),
        }


@dataclass
class CocoWeights:
    """A detector's COCO-trained weights and what reading them needs.

    Attributes:
        state: the state_dict (keys of the torchvision model or a cvpipe Detector).
        labels: the COCO head's channel → class name (channel 0 = background).
        info: JSON-safe source record (``source``, ``path``, ``sha256``...).
        image_mean, image_std: the input normalisation the weights were trained with,
            when it differs from the detector's default (torchvision's SSD300-VGG16:
            0..255 inputs minus the mean).
    """

    state: dict[str, Tensor]
    labels: Mapping[int, str]
    info: dict[str, Any]
    image_mean: list[float] | None = None
    image_std: list[float] | None = None


CocoLoader = Callable[[str], CocoWeights]
COCO_LOADERS: dict[str, tuple[CocoLoader, str]] = {}


def register_coco_loader(detector: str, loader: CocoLoader, where: str = "package") -> None:
    """Give ``detector`` a COCO-weights source other than torchvision's (e.g. a converted
    TensorFlow checkpoint shipped in a package, with its own channel order); ``where`` is
    what ``cvpipe models`` shows in its coco column."""
    COCO_LOADERS[detector] = (loader, where)


def coco_availability(detector: str) -> str:
    """Where ``detector``'s COCO weights come from: a registered loader's ``where``,
    ``cache`` (torch cache), ``download`` (published, not here) or ``-`` (none)."""
    if detector in COCO_LOADERS:
        return COCO_LOADERS[detector][1]
    from cvpipe.models.published import published_coco

    pub = published_coco(detector)
    if pub is None:
        return "-"
    return "cache" if pub.dest.is_file() else "download"


def _torchvision_coco(detector: str) -> CocoWeights:
    from cvpipe.models.published import resolve_coco

    state, info = resolve_coco(detector)
    mean = std = None
    if detector == "ssd300_vgg16":  # torchvision's COCO SSD300: caffe-style VGG inputs
        mean, std = [0.48235, 0.45882, 0.40784], [1.0 / 255.0] * 3
    return CocoWeights(state, torchvision_coco_labels(), info, mean, std)


def coco_weights(detector: str) -> CocoWeights:
    """The COCO weights of ``detector``: its registered loader, else torchvision's file
    (torch cache, else a download unless downloads are off).

    Raises:
        WeightsNotFoundError: none published, or not here and not downloadable.
    """
    loader = COCO_LOADERS[detector][0] if detector in COCO_LOADERS else _torchvision_coco
    return loader(detector)


def start_from_coco(
    det: Any, classes: Sequence[str], class_map: Mapping[str, str] | None = None
) -> CocoStartReport:
    """Load ``det``'s COCO weights (:func:`coco_weights`) for the dataset's ``classes``.

    Sets ``det.weights_info`` (source record + summary) and, where the weights need it,
    the input normalisation; BatchNorm layers of backbones torchvision trains frozen
    become FrozenBatchNorm2d, as with torchvision's own COCO models.

    Raises:
        WeightsNotFoundError, CheckpointError, ConfigError: see :func:`load_coco_start`.
    """
    weights = coco_weights(det.name)
    where = str(weights.info.get("path") or weights.info.get("source") or "")
    report = load_coco_start(
        det, weights.state, coco_labels=weights.labels, classes=classes,
        class_map=class_map, source=where,
    )  # fmt: skip
    if weights.image_mean is not None and weights.image_std is not None:
        det.model.transform.image_mean = list(weights.image_mean)
        det.model.transform.image_std = list(weights.image_std)
    from cvpipe.models.detection import DETECTORS, _freeze_batchnorm

    if DETECTORS.get(det.name).frozen_bn:
        _freeze_batchnorm(det.model.backbone.body)
    det.weights_info = {
        **{k: v for k, v in report.to_json().items() if k != "source"},
        **{k: v for k, v in weights.info.items() if k != "source"},
        "source": "coco",
        "fetched_from": weights.info.get("source", ""),
        "summary": report.summary(),
    }
    return report


def torchvision_coco_labels() -> dict[int, str]:
    """torchvision's COCO head channels: 0 = background, then COCO category ids 1..90."""
    from cvpipe.models.coco_assets import COCO_LABELS

    return {0: "__background__", **COCO_LABELS}


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def coco_class_mapping(
    classes: Sequence[str],
    coco_labels: Mapping[int, str],
    class_map: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Dataset class → COCO channel, for the classes whose name is a COCO class name.

    Args:
        classes: dataset class names in order.
        coco_labels: COCO head channel → class name (channel 0 = background, not matched).
        class_map: optional dataset class → COCO class name overrides (e.g.
            ``{"plane": "airplane"}``); a name that is no COCO class is an error.

    Raises:
        ConfigError: a ``class_map`` entry names an unknown dataset or COCO class.
    """
    by_name = {_norm(n): int(j) for j, n in coco_labels.items() if int(j) != 0}
    overrides = {_norm(k): _norm(v) for k, v in (class_map or {}).items()}
    known = {_norm(c) for c in classes}
    for k, v in overrides.items():
        if k not in known:
            raise ConfigError(f"class map: {k!r} is not a dataset class ({', '.join(classes)})")
        if v not in by_name:
            raise ConfigError(
                f"class map: {v!r} is not a COCO class; valid: {', '.join(sorted(by_name))}"
            )
    out = {}
    for c in classes:
        key = overrides.get(_norm(c), _norm(c))
        if key in by_name:
            out[c] = by_name[key]
    return out


def _class_layer(key: str, layers: Sequence[ClassLayer]) -> ClassLayer | None:
    return next((c for c in layers if re.search(c.pattern, key)), None)


def _rebuild_rows(
    key: str,
    fresh: Tensor,
    coco: Tensor,
    layer: ClassLayer,
    k_det: int,
    rows: Mapping[int, int],
    where: str,
) -> Tensor:
    """``fresh`` with model channels ``rows`` (dataset-class row → COCO channel) from ``coco``."""
    d0, c0, b = fresh.shape[0], coco.shape[0], layer.block
    if d0 % (k_det * b):
        raise CheckpointError(
            f"{where}: class-dependent {key} has shape {tuple(fresh.shape)} in the model, not "
            f"a multiple of {k_det} classes x {b}; not the detector these weights are for"
        )
    groups = d0 // (k_det * b)
    if c0 % (groups * b):
        raise CheckpointError(
            f"{where}: COCO {key} has shape {tuple(coco.shape)}, not {groups} groups x classes x "
            f"{b} like the model's {tuple(fresh.shape)}; not weights for this architecture"
        )
    k_coco = c0 // (groups * b)
    bad = [j for j in rows.values() if not 0 <= j < k_coco]
    if bad:
        raise ConfigError(
            f"{where}: COCO label channel {bad[0]} is outside the state's {k_coco} class "
            f"channels ({key}); the label table does not fit these weights"
        )
    out = fresh.detach().clone()
    view = out.view(groups, k_det, b, *fresh.shape[1:])
    src = coco.detach().to(fresh.dtype).reshape(groups, k_coco, b, *coco.shape[1:])
    for row, j in rows.items():
        view[:, row] = src[:, j]
    return out


def load_coco_start(
    det: Any,
    state: Mapping[str, Tensor],
    *,
    coco_labels: Mapping[int, str],
    classes: Sequence[str],
    class_map: Mapping[str, str] | None = None,
    source: str = "",
    class_layers: Sequence[ClassLayer] = CLASS_LAYERS,
) -> CocoStartReport:
    """Load COCO-trained ``state`` into ``det`` (a freshly built Detector for ``classes``).

    Args:
        det: a :class:`~cvpipe.models.detection.Detector` just built (its class-dependent
            tensors hold the builder's initialisation, which new classes keep).
        state: the COCO detector's state_dict, keys of the torchvision model
            (``backbone...``, ``head...``) or of a cvpipe Detector (``model.`` prefix).
        coco_labels: the COCO head's channel → class name (channel 0 = background);
            :func:`torchvision_coco_labels` for torchvision's detectors.
        classes: the dataset's class names, in order (``det.num_classes`` of them).
        class_map: dataset class → COCO class name, for names that differ.
        source: where ``state`` came from (for the report).
        class_layers: patterns of the class-dependent tensors (default :data:`CLASS_LAYERS`).

    Returns:
        A :class:`CocoStartReport` (also logged at INFO).

    Raises:
        CheckpointError: a tensor missing or of another shape outside the class-dependent
            layers, an unexpected key, or no class-dependent layer found.
        ConfigError: ``classes`` does not match ``det.num_classes``; a bad ``class_map``.
    """
    model = det.model
    where = f"{det.name} COCO start" + (f" from {source}" if source else "")
    if len(classes) != det.num_classes:
        raise ConfigError(
            f"{where}: {len(classes)} class names for a detector with {det.num_classes} classes"
        )
    src = {str(k): v for k, v in state.items()}
    if src and all(k.startswith("model.") for k in src):
        src = {k[len("model.") :]: v for k, v in src.items()}
    target = model.state_dict()
    mapping = coco_class_mapping(classes, coco_labels, class_map)
    index = {c: i for i, c in enumerate(classes)}
    rows = {index[c] + det.label_offset: j for c, j in mapping.items()}
    if rows:
        rows[0] = 0  # background
    report = CocoStartReport(det.name, source, mapping=dict(mapping))
    report.coco_names = {j: str(coco_labels[j]) for j in mapping.values()}
    report.new_classes = [c for c in classes if c not in mapping]
    new: dict[str, Tensor] = {}
    missing, wrong = [], []
    for key, fresh in target.items():
        layer = _class_layer(key, class_layers)
        if key not in src:
            if key.endswith("num_batches_tracked"):
                report.filled.append(key)
                new[key] = fresh
            else:
                missing.append(key)
            continue
        if layer is not None and src[key].shape[1:] == fresh.shape[1:]:
            k_det = det.num_classes + det.label_offset
            new[key] = _rebuild_rows(key, fresh, src[key], layer, k_det, rows, where)
            report.class_layers.append(key)
        elif src[key].shape != fresh.shape:
            wrong.append(f"{key} {tuple(src[key].shape)} vs model {tuple(fresh.shape)}")
        else:
            new[key] = src[key]
            report.kept.append(key)
    unexpected = [k for k in src if k not in target]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches outside the class layers ({_few(wrong)})")
    if not report.class_layers and not problems:
        problems.append("no class-dependent layer found (patterns: CLASS_LAYERS)")
    if problems:
        raise CheckpointError(
            f"{where}: the weights do not fit {det.name}: {'; '.join(problems)}. Use COCO "
            f"weights of the same architecture, or start from --weights imagenet / none"
        )
    with torch.no_grad():
        model.load_state_dict(new, strict=True)
    log.info("%s", report.summary())
    return report


def _compress(names: Sequence[str]) -> str:
    """``a.0.1, a.1.1, a.2.1`` → ``a.*.1 (3 layers)``: names that differ only in numbers."""
    groups: dict[str, list[list[str]]] = {}
    for n in names:
        parts = n.split(".")
        key = ".".join("*" if p.isdigit() else p for p in parts)
        groups.setdefault(key, []).append(parts)
    out = []
    for members in groups.values():
        if len(members) == 1:
            out.append(".".join(members[0]))
            continue
        cols = zip(*members, strict=True)
        joined = ".".join(c[0] if len(set(c)) == 1 else "*" for c in cols)
        out.append(f"{joined} ({len(members)} layers)")
    return ", ".join(out)


def _few(keys: Sequence[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")
