"""Evaluate a run on a dataset split: metrics, plots and an HTML report."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cvpipe.cli.output import echo, table, warn

if TYPE_CHECKING:
    from cvpipe.evaluation.base import EvalResult

HELP = "evaluate a run on a dataset split"
USES_CONFIG = False
EXAMPLES = """
  cvpipe eval runs/r50                       # the training dataset's test split (else val)
  cvpipe eval runs/r50 --data datasets/bins --split val
  cvpipe eval runs/r50 --which last --batch-size 128 --workers 4

Writes RUN/eval/metrics.json (accuracy, per_class, macro, weighted, confusion_matrix,
top_k, ece; mae, rmse, off_by_one_accuracy, mean_signed_error for counters),
RUN/eval/predictions.jsonl (one row per image) and RUN/eval/report.html.
Unreadable images are listed in metrics.json "skipped" and left out of the metrics.

Detect runs get COCO metrics (mAP@[.5:.95], @.5, @.75, small/medium/large, AR@1/10/100,
per-class AP), IoU and confidence statistics, PR curves and counting from detections
(threshold chosen on val). A pretrained benchmark detector is evaluated the same way,
without training:

  cvpipe eval --benchmark-model ssd_mobilenet_v2_coco --class-map planes.yaml \\
      --data datasets/planes --out evals/tf_ssd
  cvpipe eval --benchmark-model detector.onnx --class-map map.json --data datasets/planes --out evals/onnx
  cvpipe eval --benchmark-model frozen_inference_graph.pb --benchmark-config graph.pbtxt ...

The class map (YAML or JSON) maps benchmark class names to dataset classes, e.g.
{"airplane": "Airplane"}; other benchmark classes are dropped.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run",
        nargs="?",
        help="run directory written by 'cvpipe train' (omit with --benchmark-model)",
    )
    p.add_argument(
        "--data", help="dataset directory (default: the run's training dataset, from dataset.lock)"
    )
    p.add_argument("--split", help="split to evaluate (default: test, else val)")
    p.add_argument(
        "--which", choices=["best", "last"], default="best", help="checkpoint (default: best)"
    )
    p.add_argument("--out", help="output folder (default: RUN/eval)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--workers", type=int, default=0, help="decoding worker processes (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument(
        "--no-report", action="store_true", help="skip report.html (metrics and predictions only)"
    )
    b = p.add_argument_group("benchmark detectors (evaluated without training)")
    b.add_argument(
        "--benchmark-model",
        metavar="SPEC",
        help="ssd_mobilenet_v2_coco (built in), an .onnx detector or a TF frozen graph .pb",
    )
    b.add_argument(
        "--class-map", metavar="FILE", help="YAML/JSON: benchmark class -> dataset class"
    )
    b.add_argument("--benchmark-config", metavar="PBTXT", help="OpenCV text graph of a .pb")
    b.add_argument(
        "--score-thresh",
        type=float,
        help="drop benchmark detections below this score (default: keep all)",
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.errors import ConfigError
    from cvpipe.evaluation.evaluate import evaluate_run

    if args.benchmark_model:
        return _benchmark(args)
    if not args.run:
        raise ConfigError(
            "give a run directory, or --benchmark-model SPEC --data DATASET --out DIR"
        )
    res = evaluate_run(
        args.run,
        data=args.data,
        split=args.split,
        which=args.which,
        out=args.out,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        report=not args.no_report,
    )
    return _print(res)


def _benchmark(args: argparse.Namespace) -> int:
    from cvpipe.errors import ConfigError
    from cvpipe.evaluation.external.load import evaluate_benchmark

    if args.run:
        raise ConfigError("give either a run or --benchmark-model, not both")
    if not args.data or not args.out:
        raise ConfigError("--benchmark-model needs --data DATASET and --out DIR")
    res = evaluate_benchmark(
        args.benchmark_model,
        data=args.data,
        out=args.out,
        split=args.split,
        class_map=args.class_map,
        config=args.benchmark_config,
        score_thresh=args.score_thresh,
        batch_size=min(args.batch_size, 16),
        workers=args.workers,
        report=not args.no_report,
    )
    return _print(res)


def _print(res: EvalResult) -> int:
    """Notice, unreadable images, then the tables the task's evaluator gives."""
    from cvpipe.tasks.registry import get_task

    m = res.metrics
    if m.get("notice"):
        warn(f"note: {m['notice']}")
    for s in res.skipped[:10]:
        warn(f"skipped {s['file']}: {s['error']}")
    if len(res.skipped) > 10:
        warn(f"... and {len(res.skipped) - 10} more unreadable images (see metrics.json 'skipped')")
    for i, (headers, rows, title) in enumerate(get_task(m["task"]).evaluator().summary(m)):
        if i:
            echo("")
        echo(table(rows, headers, title=title))
    echo(f"\nmetrics: {res.out_dir / 'metrics.json'}")
    if res.report is not None:
        echo(f"report:  {res.report}")
    return 0
