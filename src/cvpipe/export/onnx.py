"""ONNX export of a classify/count run, checked against PyTorch.

``export_onnx(run)`` writes ``RUN/model.onnx``: the eval-mode network followed by a
softmax, input ``input`` float32 ``[batch, 3, S, S]`` (dynamic batch), output ``probs``
float32 ``[batch, C]``. Preprocessing (resize, centre crop, normalisation) stays outside
the graph; it is recorded in the ONNX metadata (``cvpipe.card``: the model card JSON) and
in ``model_card.json`` under ``extra.onnx``, so a bare ``model.onnx`` is enough to serve.

Before anything is written, ONNX Runtime runs the exported graph on seeded sample inputs
and its probabilities are compared with PyTorch's: fp32 must agree within
``tolerance`` (max absolute difference, default 1e-4); a dynamically quantised int8
model (``int8=True``) must agree on the top-1 class for at least ``min_top1`` of the
samples (default 0.9), and its max difference is reported.

Example:
    >>> res = export_onnx("runs/bins")  # doctest: +SKIP
    >>> res.path, res.max_abs_diff  # doctest: +SKIP
    (PosixPath('runs/bins/model.onnx'), 3.1e-07)
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cvpipe.errors import CheckpointError, ConfigError, CvpipeError, MissingDependencyError
from cvpipe.io import atomic_open, read_json, write_json

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "probs"
CARD_KEY = "cvpipe.card"


class ExportCheckFailed(CvpipeError):
    """ONNX Runtime's outputs differ from PyTorch's beyond the stated tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: the ONNX file.
        precision: ``fp32`` or ``int8``.
        opset: ONNX opset of the graph.
        samples: number of sample images compared.
        max_abs_diff: largest |p_onnx - p_torch| over samples and classes.
        top1_agreement: fraction of samples with the same top-1 class.
        tolerance: the fp32 bound checked (None for int8, which checks top-1 instead).
        seconds: export + check time.
        size_bytes: size of the ONNX file.
    """

    path: Path
    precision: str
    opset: int
    samples: int
    max_abs_diff: float
    top1_agreement: float
    tolerance: float | None
    seconds: float
    size_bytes: int

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = self.path.name
        return d


def _require() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - environment dependent
        raise MissingDependencyError(
            f"ONNX export needs onnx and onnxruntime ({exc.name} is missing); "
            "install them with: pip install 'cvpipe[serve]'"
        ) from None
    return onnx, onnxruntime


def _probs_module(net: Any) -> Any:
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x).float().softmax(dim=1)

    return WithSoftmax(net).eval()


def sample_inputs(input_size: int, n: int = 8, seed: int = 0) -> np.ndarray:
    """Seeded sample batch ``[n, 3, S, S]``: smooth random images, roughly normalised."""
    rng = np.random.default_rng(seed)
    low = rng.normal(0.0, 1.0, (n, 3, 4, 4)).astype(np.float32)
    reps = -(-input_size // 4)
    big = np.kron(low, np.ones((1, 1, reps, reps), dtype=np.float32))[..., :input_size, :input_size]
    noise = rng.normal(0.0, 0.3, big.shape).astype(np.float32)
    return np.ascontiguousarray(big + noise)


def _export_graph(module: Any, x: np.ndarray, path: Path, opset: int) -> None:
    import torch

    dim = torch.export.Dim("batch", min=1, max=4096)
    try:
        torch.onnx.export(
            module,
            (torch.from_numpy(x),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: dim},),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    except Exception as exc:  # the exporter raises many internal types
        raise CheckpointError(
            f"torch.onnx.export failed for opset {opset}: {type(exc).__name__}: {exc}; "
            "try another --opset (17..21)"
        ) from exc


def _ort_probs(path: Path, x: np.ndarray) -> np.ndarray:
    _, ort = _require()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0], dtype=np.float32)


def _set_metadata(path: Path, card: dict[str, Any], extra: dict[str, Any]) -> bytes:
    onnx, _ = _require()
    model = onnx.load(str(path))
    meta = {
        CARD_KEY: json.dumps(card),
        "cvpipe.task": card["task"],
        "cvpipe.classes": json.dumps(card["classes"]),
        "cvpipe.preprocess": json.dumps(card["preprocess"]),
        "cvpipe.export": json.dumps(extra),
    }
    del model.metadata_props[:]
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.producer_name = "cvpipe"
    return bytes(model.SerializeToString())


def read_onnx_card(path: str | Path) -> dict[str, Any]:
    """The model card JSON stored in a cvpipe ONNX file's metadata.

    Raises:
        CheckpointError: not an ONNX file, or one not written by ``cvpipe export``.
    """
    _, ort = _require()
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot load as ONNX: {exc}") from None
    meta = sess.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise CheckpointError(
            f"{path}: no '{CARD_KEY}' metadata; export the run with 'cvpipe export RUN'"
        )
    card: dict[str, Any] = json.loads(meta[CARD_KEY])
    return card


def export_onnx(
    run: str | Path,
    *,
    opset: int = 18,
    int8: bool = False,
    which: str = "best",
    tolerance: float = 1e-4,
    min_top1: float = 0.9,
    samples: int = 8,
) -> ExportResult:
    """Export a classify/count run to ``RUN/model.onnx`` and record it in the model card.

    Args:
        run: run directory (model_card.json + checkpoints/).
        opset: ONNX opset (17..21).
        int8: dynamically quantise weights to int8 (classifiers and counters).
        which: ``best`` or ``last`` checkpoint.
        tolerance: fp32 bound on max |p_onnx - p_torch|.
        min_top1: int8 bound on the top-1 agreement with PyTorch.
        samples: sample images compared.

    Returns:
        An :class:`ExportResult` with the measured differences.

    Raises:
        CheckpointError: not an exportable run, or the exporter failed.
        ExportCheckFailed: ONNX Runtime disagrees with PyTorch beyond the bounds
            (nothing is written).
        ConfigError: an opset outside 17..21.
    """
    import torch

    from cvpipe.engine.runs import ModelCard, RunDir
    from cvpipe.inference.loading import load_model
    from cvpipe.tasks.registry import get_task, task_names

    if not 17 <= opset <= 21:
        raise ConfigError(f"--opset {opset}: supported opsets are 17..21")
    rd = RunDir(run)
    card = ModelCard.load(rd.card)
    if not get_task(card.task).exportable:
        exportable = [name for name in task_names() if get_task(name).exportable]
        raise CheckpointError(
            f"{run}: ONNX export handles {', '.join(exportable)} runs; this run is "
            f"{card.task!r} (serve it with PyTorch: 'cvpipe serve {run}')"
        )
    t0 = time.perf_counter()
    net, card = load_model(run, which=which)
    module = _probs_module(net)
    x = sample_inputs(card.input_size, max(2, samples))
    with torch.inference_mode():
        ref = module(torch.from_numpy(x)).numpy()
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=rd.root) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        _export_graph(module, x, fp32, opset)
        final = fp32
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = Path(tmp) / "int8.onnx"
            quantize_dynamic(str(fp32), str(final), weight_type=QuantType.QInt8)
        got = _ort_probs(final, x)
        diff = float(np.abs(got - ref).max())
        top1 = float((got.argmax(1) == ref.argmax(1)).mean())
        precision = "int8" if int8 else "fp32"
        log.info("onnx %s: max |diff| %.3g, top-1 agreement %.3f", precision, diff, top1)
        if not int8 and not diff <= tolerance:
            raise ExportCheckFailed(
                f"{run}: ONNX Runtime probabilities differ from PyTorch by {diff:.3g} "
                f"(> {tolerance:g}) on {len(x)} samples; nothing written; try another --opset"
            )
        if int8 and top1 < min_top1:
            raise ExportCheckFailed(
                f"{run}: int8 model agrees with PyTorch on top-1 for {top1:.0%} of samples "
                f"(< {min_top1:.0%}); nothing written; export without --int8"
            )
        result = ExportResult(
            path=rd.root / "model.onnx",
            precision=precision,
            opset=opset,
            samples=len(x),
            max_abs_diff=diff,
            top1_agreement=top1,
            tolerance=None if int8 else tolerance,
            seconds=round(time.perf_counter() - t0, 3),
            size_bytes=final.stat().st_size,
        )
        card_json = read_json(rd.card)
        extra = dict(card_json.get("extra") or {})
        extra["onnx"] = {
            **result.to_json(),
            "input": {"name": INPUT_NAME, "shape": ["batch", 3, card.input_size, card.input_size]},
            "output": {"name": OUTPUT_NAME, "kind": "probabilities"},
            "checkpoint": which,
        }
        extra.setdefault("thresholds", {})
        card_json["extra"] = extra
        data = _set_metadata(final, card_json, extra["onnx"])
    result = replace(result, size_bytes=len(data))
    with atomic_open(result.path, "wb") as f:
        f.write(data)
    write_json(rd.card, card_json)
    return result
