"""Predict image files with a trained run: class and probabilities, count, or boxes."""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import sys
from typing import IO, Any

from cvpipe.cli.output import warn

HELP = "predict images with a run"
USES_CONFIG = False
EXAMPLES = """
  cvpipe predict runs/r50 photo.jpg
  cvpipe predict runs/r50 bins/ --format csv --out predictions.csv      # folders are searched recursively
  cvpipe predict runs/r50 'shots/**/*.jpg' --top-k 5 --batch-size 64

Output: one JSON object per line (default) or CSV rows with file, class (or count for
counters), confidence and the top-k classes with their probabilities. Unreadable files
get a row with an "error" field; the exit code is 0 unless no image could be predicted.
Image URLs come later.

  cvpipe predict --server http://127.0.0.1:8000 photo.jpg bins/ [--token T]

Detect runs give per image "detections": [{"box": [x1, y1, x2, y2] pixels, "score",
"label"}] and "count" (CSV: one row per box). --draw DIR also writes each image with
its boxes drawn; --score-thresh (default: the run's counting threshold, else 0.5),
--nms-iou and --max-detections set the detector's post-processing:

  cvpipe predict runs/planes photos/ --draw drawn/ --score-thresh 0.4 --max-detections 20

With --server URL the images are sent to a running 'cvpipe serve' (POST
/v1/predict/batch, --batch-size images per request) instead of loading a run; give the
images only (no RUN). Detect servers add a "detections" list per image.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory written by 'cvpipe train' (omit it with --server)")
    p.add_argument(
        "images",
        nargs="*",
        metavar="IMAGES",
        help="image files, folders (recursive) or glob patterns",
    )
    p.add_argument(
        "--format", choices=["json", "csv"], default="json", help="JSON lines (default) or CSV"
    )
    p.add_argument("--out", help="write to this file (default: standard output)")
    p.add_argument("--top-k", type=int, default=3, help="classes listed per image (default 3)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    p.add_argument("--workers", type=int, default=0, help="decoding worker processes (default 0)")
    p.add_argument(
        "--which", choices=["best", "last"], default="best", help="checkpoint (default: best)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument(
        "--server", metavar="URL", help="send the images to a running 'cvpipe serve' at URL"
    )
    p.add_argument("--token", help="bearer token for --server (default: $CVPIPE_TOKEN)")
    d = p.add_argument_group("detectors")
    d.add_argument(
        "--score-thresh", type=float, help="keep boxes scoring at least this (default: see above)"
    )
    d.add_argument("--nms-iou", type=float, help="NMS IoU threshold (default: the run's)")
    d.add_argument(
        "--max-detections", type=int, help="boxes per image at most (default: the run's)"
    )
    d.add_argument("--draw", metavar="DIR", help="also write the images with their boxes drawn")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="--server: seconds per request (default 60)"
    )


def _write_json(f: IO[str], row: dict[str, Any]) -> None:
    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    f.flush()


def run(args: argparse.Namespace) -> int:
    from cvpipe.errors import ConfigError
    from cvpipe.inference.outputs import PredictOptions
    from cvpipe.inference.predictor import BasePredictor, expand_inputs
    from cvpipe.io import atomic_open
    from cvpipe.tasks.registry import get_task

    if args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k}: must be at least 1")
    if args.server:
        from cvpipe.serve.client import ServerClient

        files, problems = expand_inputs([args.run, *args.images])
        client = ServerClient(args.server, args.token, args.timeout)
        try:
            task, classes = client.model()
        except BaseException:
            client.close()
            raise
        k = min(args.top_k, len(classes))
        outputs = get_task(task).outputs()
        results = client.rows(files, k, args.batch_size)
    else:
        if not args.images:
            raise ConfigError("give a run and at least one image (or --server URL and images)")
        files, problems = expand_inputs(args.images)
        pred = BasePredictor.from_run(args.run, which=args.which, device=args.device)
        k = min(args.top_k, len(pred.card.classes))
        outputs = get_task(pred.card.task).outputs()
        options = PredictOptions(
            top_k=k, batch_size=args.batch_size, workers=args.workers, draw=args.draw,
            score_thresh=args.score_thresh, nms_iou=args.nms_iou,
            max_detections=args.max_detections,
        )  # fmt: skip
        results = outputs.rows(pred, files, options)
    ok = drawn = 0
    with contextlib.ExitStack() as stack:
        f: IO[str] = stack.enter_context(atomic_open(args.out)) if args.out else sys.stdout
        writer = (
            csv.DictWriter(f, fieldnames=outputs.csv_header(k), extrasaction="ignore")
            if args.format == "csv"
            else None
        )
        if writer is not None:
            writer.writeheader()
        missing = ({"file": item, "error": why} for item, why in problems)
        for row in itertools.chain(missing, results):
            ok += "error" not in row
            drawn += "drawn" in row
            if writer is None:
                _write_json(f, row)
            else:
                writer.writerows(outputs.csv_lines(row))
    n_bad = len(files) + len(problems) - ok
    if n_bad:
        warn(f"{n_bad} input(s) could not be predicted (rows with an error field)")
    if args.out:
        warn(f"{ok} prediction(s) written to {args.out}")
    if drawn:
        warn(f"drawn images written to {args.draw}")
    if ok == 0:
        warn("no image could be predicted")
        return 1
    return 0
