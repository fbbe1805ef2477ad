"""Compare runs side by side on the same images, with paired statistics."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table, warn

HELP = "compare runs side by side"
USES_CONFIG = False
EXAMPLES = """
  cvpipe compare runs/custom_cnn runs/r50                 # first run = baseline
  cvpipe compare runs/r50 runs/rx101 --names resnet50,resnext101 --out compare/bins
  cvpipe compare runs/a runs/b runs/c --data datasets/scenes --split test

Each run's RUN/eval/predictions.jsonl is reused when it was made on the same dataset,
split and checkpoint; other runs are evaluated into OUT/evals/NAME. Every run is tested
against the baseline with McNemar's test and a paired bootstrap 95% CI of the accuracy
difference. Writes OUT/compare.json and OUT/report.html (default OUT: ./compare).

Detectors: the table shows mAP, mAP50/75, AR@1/10/100 and counting per model, with a
paired bootstrap 95% CI of the mAP difference (images resampled); the report overlays
PR curves and IoU distributions. Eval folders (e.g. a benchmark model's 'cvpipe eval
--benchmark-model ... --out DIR') can stand in for runs:

  cvpipe compare evals/tf_ssd runs/ssd512 --names benchmark,ours --out compare/planes
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs", nargs="+", metavar="RUN", help="run directories; the first is the baseline"
    )
    p.add_argument("--names", help="comma-separated display names, one per run")
    p.add_argument("--data", help="dataset (default: the first run's training dataset)")
    p.add_argument("--split", help="split (default: test, else val)")
    p.add_argument(
        "--which", choices=["best", "last"], default="best", help="checkpoint of every run"
    )
    p.add_argument("--out", default="compare", help="output folder (default: ./compare)")
    p.add_argument(
        "--batch-size", type=int, default=64, help="images per batch for runs evaluated here"
    )
    p.add_argument("--workers", type=int, default=0, help="decoding worker processes")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from cvpipe.errors import ConfigError
    from cvpipe.evaluation.compare import compare_runs
    from cvpipe.tasks.registry import get_task

    if len(args.runs) < 2:
        raise ConfigError("compare needs at least two runs (the first is the baseline)")
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    res = compare_runs(
        args.runs,
        names=names,
        data=args.data,
        split=args.split,
        which=args.which,
        out=args.out,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        n_resamples=args.resamples,
        seed=args.seed,
    )
    d = res.data
    if d.get("notice"):
        warn(f"note: {d['notice']}")
    for i, (headers, rows, title) in enumerate(get_task(d["task"]).evaluator().compare_summary(d)):
        if i:
            echo("")
        echo(table(rows, headers, title=title))
    echo(f"\ncomparison: {res.out_dir / 'compare.json'}")
    if res.report is not None:
        echo(f"report:     {res.report}")
    return 0
