"""Export a run to ONNX, checked against PyTorch."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo

HELP = "export a run to ONNX"
USES_CONFIG = False
EXAMPLES = """
  cvpipe export runs/bins                      # RUN/model.onnx (fp32), opset 18
  cvpipe export runs/bins --int8               # dynamic int8 quantization (smaller, faster on CPU)
  cvpipe export runs/scenes --opset 17 --tolerance 1e-5

ONNX Runtime's probabilities are compared with PyTorch's on sample inputs before anything
is written: fp32 within --tolerance (max absolute difference), int8 by top-1 agreement.
The model card (model_card.json and the ONNX metadata) records the task, classes,
preprocessing and input size, so 'cvpipe serve RUN' and the Lambda handler use it as is.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory written by 'cvpipe train'")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (onnx)")
    p.add_argument("--int8", action="store_true", help="dynamic int8 weight quantization")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset 17..21 (default 18)")
    p.add_argument(
        "--which", choices=["best", "last"], default="best", help="checkpoint (default: best)"
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="fp32: max |p_onnx - p_torch| allowed (default 1e-4)",
    )
    p.add_argument(
        "--min-top1",
        type=float,
        default=0.9,
        help="int8: min top-1 agreement with PyTorch (default 0.9)",
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.export.onnx import export_onnx

    res = export_onnx(
        args.run,
        opset=args.opset,
        int8=args.int8,
        which=args.which,
        tolerance=args.tolerance,
        min_top1=args.min_top1,
    )
    check = (
        f"max |p_onnx - p_torch| = {res.max_abs_diff:.2e} (tolerance {res.tolerance:g})"
        if res.tolerance is not None
        else f"top-1 agreement {res.top1_agreement:.0%}, max |diff| = {res.max_abs_diff:.2e}"
    )
    echo(f"wrote {res.path} ({res.precision}, opset {res.opset}, {res.size_bytes / 1e6:.2f} MB)")
    echo(f"checked on {res.samples} samples: {check}")
    echo(f"serve it: cvpipe serve {args.run}")
    return 0
