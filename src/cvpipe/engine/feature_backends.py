"""The backends of a feature pass: eager PyTorch with folded BatchNorms, or ONNX Runtime.

:func:`cvpipe.engine.features.cached_features` runs a frozen backbone over every image
once; on CPU it can run in ONNX Runtime instead of PyTorch
(``FeatureRequest.backend`` / ``feature_backend`` in the train config):

- ``torch``: eager PyTorch, on a copy of the backbone with its BatchNorms folded into
  the convolutions (:func:`cvpipe.models.fuse.fold_batchnorm`, checked on the first images).
- ``onnxruntime``: export the backbone once (TorchScript exporter, opset 17, dynamic
  batch) to ``<cache root>/onnx/<graph key>.onnx`` (key: model, weights digest, input
  shape, torch version, opset; not the records, so train, val and all tuning trials share
  one graph) and run it in an ONNX Runtime CPU session; its features for the first images
  of the first batch must match PyTorch's within 1e-4 (abs + rel), else
  :class:`FeatureBackendError`. CPU and float32 only.
- ``auto`` (default): ``onnxruntime`` on CPU when the graph is already cached, or when the
  PyTorch pass would take longer than ``ORT_PAYBACK_S`` (estimated from the first
  images) so that the one-off cost pays for itself (EfficientNet-Lite0 on 2 CPU cores:
  about 0.6 s to import onnx and ONNX Runtime, export and open a session, then about 20%
  faster per image than folded PyTorch; the export alone took 2-6 s on a heavily loaded
  machine); PyTorch otherwise, and PyTorch with a logged reason when the export fails or
  the check does not match.

The two backends agree to about 1e-5 (below the float16 storage step), so the backend is
not part of the cache key: entries are interchangeable, and ``meta.json`` records which
backend wrote them.

Example:
    >>> run, ref = pick_runner("torch", None, torch.device("cpu"), torch_run, graph, x, 100, 2)  # doctest: +SKIP
    >>> run.name  # doctest: +SKIP
    'torch'
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from cvpipe.errors import CvpipeError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")
ORT_PAYBACK_S = 4.0  # auto exports to ONNX when the torch pass would take longer than this
CHECK_IMAGES = 8  # images of the first batch run through both backends and compared
FOLD_IMAGES = 4  # images that find and check the BatchNorm folding of the torch backend
CHECK_TOL = 1e-4  # |onnxruntime - torch| <= CHECK_TOL + CHECK_TOL * |torch|
ONNX_OPSET = 17


class FeatureBackendError(CvpipeError):
    """``feature_backend: onnxruntime`` was asked for but cannot be used as asked."""


class Runner(Protocol):
    name: str

    def __call__(self, x: torch.Tensor) -> list[np.ndarray]: ...


def _outputs(out: Any) -> list[torch.Tensor]:
    """A module's output as a list of tensors (one tensor, a list/tuple, or a dict)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return list(out.values())
    return list(out)


# backbone -> ((weights digest, device), its folded inference copy)
_FOLDED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[str, str], nn.Module]] = (
    weakref.WeakKeyDictionary()
)


class TorchRunner:
    """The eager backbone: ``[B, 3, H, W]`` float32 → one float32 numpy array per output."""

    name = "torch"

    def __init__(
        self, backbone: nn.Module, device: torch.device, amp_dtype: Any, digest: str = ""
    ) -> None:
        self.backbone, self.device, self.amp_dtype = backbone, device, amp_dtype
        self.digest = digest
        self.net: nn.Module | None = None

    def prepare(self, x: torch.Tensor) -> None:
        """channels_last, and a copy with BatchNorms folded into the convolutions (checked
        on the first images of ``x``); once, after any ONNX export (which wants NCHW)."""
        if self.net is not None:
            return
        from cvpipe.models.fuse import fold_batchnorm

        self.backbone.to(memory_format=torch.channels_last)
        key = (self.digest, str(self.device))
        known = _FOLDED.get(self.backbone)
        if self.digest and known is not None and known[0] == key:
            self.net = known[1]  # the train and val passes of one run fold once
            return
        example = x[:FOLD_IMAGES].to(self.device).contiguous(memory_format=torch.channels_last)
        folded = fold_batchnorm(self.backbone, example)
        if folded.folded:
            log.info(
                "feature pass: %d batch norms folded into their convolutions (max |diff| %.1e)",
                folded.folded,
                folded.max_diff,
            )
        self.net = folded.module
        _FOLDED[self.backbone] = (key, folded.module)

    def __call__(self, x: torch.Tensor) -> list[np.ndarray]:
        self.prepare(x)
        assert self.net is not None
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            out = _outputs(self.net(x))
        return [f.float().cpu().numpy() for f in out]


class _OrtRunner:
    """The exported backbone in an ONNX Runtime CPU session."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> list[np.ndarray]:
        outs = self.session.run(None, {self.input: x.contiguous().numpy()})
        return [np.asarray(o, dtype=np.float32) for o in outs]


@dataclass(frozen=True)
class Graph:
    """Where the backbone's ONNX export lives: ``<cache root>/onnx/<key>.onnx``.

    The graph depends on the backbone (name, weights digest), the input shape and the
    exporter, not on the records, so train, val and every tuning trial share one file.
    """

    root: Path
    model: str
    digest: str

    def path(self, shape: Sequence[int]) -> Path:
        payload = {
            "model": self.model,
            "backbone_sha256": self.digest,
            "input": list(shape),
            "torch": torch.__version__,
            "opset": ONNX_OPSET,
            "exporter": "torchscript",
        }
        key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return self.root / "onnx" / f"{key}.onnx"

    def ensure(self, backbone: nn.Module, shape: Sequence[int], outputs: int = 1) -> Path:
        """Export ``backbone`` for ``[batch, *shape]`` inputs unless already cached."""
        names = ["features"] + [f"features_{i}" for i in range(1, outputs)]
        path = self.path(shape)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem[:16]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        was_cl = _is_channels_last(backbone)
        t0 = time.perf_counter()
        try:
            backbone.to(memory_format=torch.contiguous_format)
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                # the TorchScript exporter is deprecated in favour of torch.export, which
                # took 37 s instead of 6 s for EfficientNet-Lite0 here; its warning is noise
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    backbone,
                    (torch.zeros(1, *shape),),
                    tmp,
                    input_names=["input"],
                    output_names=names,
                    dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                    opset_version=ONNX_OPSET,
                    dynamo=False,
                )
            os.replace(tmp, path)
        finally:
            backbone.to(memory_format=torch.channels_last if was_cl else torch.contiguous_format)
            Path(tmp).unlink(missing_ok=True)
        log.info("exported the backbone to %s in %.1f s", path, time.perf_counter() - t0)
        return path


def pick_runner(
    backend: str, amp_dtype: Any, device: torch.device, torch_run: TorchRunner, graph: Graph,
    x: torch.Tensor, passes: int, threads: int,
) -> tuple[Runner, list[np.ndarray] | None]:  # fmt: skip
    """Choose the backend on the first batch; returns it and torch features of ``x[:k]``.

    Args:
        backend: ``auto``, ``torch`` or ``onnxruntime`` (module docstring).
        amp_dtype: the autocast dtype of the pass, or None.
        device: where the backbone runs.
        torch_run: the eager backbone (the reference, and the fallback).
        graph: where the ONNX export is kept.
        x: the first batch.
        passes: image passes the whole feature pass makes (images x variants).
        threads: compute threads for ONNX Runtime.
    """
    if backend == "torch":
        return torch_run, None
    if device.type != "cpu" or amp_dtype is not None:
        why = f"device {device}" if device.type != "cpu" else "autocast is on"
        if backend == "onnxruntime":
            raise FeatureBackendError(
                f"feature_backend: onnxruntime runs the backbone on CPU in float32 ({why}); "
                "set feature_backend: auto or torch, or device: cpu and amp: off"
            )
        log.info("feature backend: torch (ONNX Runtime is used on CPU in float32 only; %s)", why)
        return torch_run, None
    k = min(len(x), CHECK_IMAGES)
    torch_run.prepare(x)
    t0 = time.perf_counter()
    ref = torch_run(x[:k])
    left = (time.perf_counter() - t0) / k * (passes - k)
    path = graph.path(x.shape[1:])
    if backend == "auto" and not path.is_file() and left < ORT_PAYBACK_S:
        log.info(
            "feature backend: torch (about %.1f s of backbone work; exporting to ONNX pays off "
            "from %.0f s)",
            left,
            ORT_PAYBACK_S,
        )
        return torch_run, ref
    try:
        ort_run = _OrtRunner(graph.ensure(torch_run.backbone, x.shape[1:], len(ref)), threads)
        got = ort_run(x[:k])
        same = len(got) == len(ref) and all(
            g.shape == r.shape for g, r in zip(got, ref, strict=True)
        )
        diff = (
            max(float(np.abs(g - r).max()) for g, r in zip(got, ref, strict=True))
            if same
            else math.inf
        )
        if not same or not all(
            np.allclose(g, r, rtol=CHECK_TOL, atol=CHECK_TOL) for g, r in zip(got, ref, strict=True)
        ):
            raise FeatureBackendError(
                f"ONNX Runtime features differ from PyTorch's by up to {diff:.2e} on the "
                f"first {k} images (tolerance {CHECK_TOL:g})"
            )
    except Exception as exc:  # noqa: BLE001 - any export/runtime failure means: use torch
        if backend == "onnxruntime":
            raise FeatureBackendError(
                f"feature_backend: onnxruntime failed for {graph.model}: "
                f"{type(exc).__name__}: {exc}; set feature_backend: torch (or auto)"
            ) from exc
        log.warning(
            "feature backend: torch (ONNX Runtime not used: %s: %s)", type(exc).__name__, exc
        )
        return torch_run, ref
    log.info(
        "feature backend: onnxruntime (%s, %d threads; max |diff| vs torch %.1e on %d images)",
        path.name,
        threads,
        diff,
        k,
    )
    return ort_run, ref


def _is_channels_last(module: nn.Module) -> bool:
    w = next((p for p in module.parameters() if p.dim() == 4), None)
    return (
        w is not None
        and w.is_contiguous(memory_format=torch.channels_last)
        and not (w.is_contiguous())
    )
