"""Evaluate a run on a dataset split: metrics, plots and an HTML report."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table, warn

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
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory written by 'cvpipe train'")
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


def run(args: argparse.Namespace) -> int:
    from cvpipe.engine.eval_report import headline
    from cvpipe.engine.evaluate import evaluate_run

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
    m = res.metrics
    if m.get("notice"):
        warn(f"note: {m['notice']}")
    for s in res.skipped[:10]:
        warn(f"skipped {s['file']}: {s['error']}")
    if len(res.skipped) > 10:
        warn(f"... and {len(res.skipped) - 10} more unreadable images (see metrics.json 'skipped')")
    title = f"{m['model']} on {m['dataset']} [{m['split']}], checkpoint {m['which']}"
    echo(table(list(headline(m).items()), ["metric", "value"], title=title))
    rows = [
        [c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in m["per_class"].items()
    ]
    echo("")
    echo(table(rows, ["class", "precision", "recall", "F1", "support"]))
    echo(f"\nmetrics: {res.out_dir / 'metrics.json'}")
    if res.report is not None:
        echo(f"report:  {res.report}")
    return 0
