"""Predict image files with a trained run: class and probabilities, count, or boxes."""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import sys
from collections.abc import Iterator
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


def rows(
    pred: Any, files: list[Any], top_k: int, batch_size: int, workers: int
) -> Iterator[dict[str, Any]]:
    """One output row per file, in input order."""
    count = pred.card.task == "count"
    for res in pred.predict_paths(files, batch_size=batch_size, workers=workers):
        if res.error is not None:
            yield {"file": str(res.path), "error": res.error}
            continue
        top = pred.top_k(res.output, top_k)
        row: dict[str, Any] = {"file": str(res.path)}
        if count:
            row["count"] = int(top[0][0])
        row["class"] = top[0][0]
        row["confidence"] = round(top[0][1], 6)
        row["top_k"] = [{"class": c, "prob": round(p, 6)} for c, p in top]
        yield row


def _write_json(f: IO[str], row: dict[str, Any]) -> None:
    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    f.flush()


def run(args: argparse.Namespace) -> int:
    from cvpipe.engine.predictor import BasePredictor, Predictor, expand_inputs
    from cvpipe.errors import ConfigError
    from cvpipe.io import atomic_open

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
        results = client.rows(files, k, args.batch_size)
    else:
        if not args.images:
            raise ConfigError("give a run and at least one image (or --server URL and images)")
        files, problems = expand_inputs(args.images)
        pred = BasePredictor.from_run(args.run, which=args.which, device=args.device)
        if pred.card.task == "detect":
            return run_detect(args, pred, files, problems)
        if not isinstance(pred, Predictor):
            raise ConfigError(
                f"{args.run}: 'cvpipe predict' handles classify and count runs only for now"
            )
        task = pred.card.task
        k = min(args.top_k, len(pred.card.classes))
        results = rows(pred, files, k, args.batch_size, args.workers)
    header = ["file", *(["count"] if task == "count" else []), "class", "confidence"]
    header += [f"{kind}{i}" for i in range(1, k + 1) for kind in ("class", "prob")] + ["error"]
    ok = 0
    with contextlib.ExitStack() as stack:
        f: IO[str] = stack.enter_context(atomic_open(args.out)) if args.out else sys.stdout
        writer = (
            csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            if args.format == "csv"
            else None
        )
        if writer is not None:
            writer.writeheader()
        missing = ({"file": item, "error": why} for item, why in problems)
        for row in itertools.chain(missing, results):
            ok += "error" not in row
            if writer is None:
                _write_json(f, row)
            else:
                flat = {key: v for key, v in row.items() if key != "top_k"}
                for i, t in enumerate(row.get("top_k", []), start=1):
                    flat[f"class{i}"], flat[f"prob{i}"] = t["class"], t["prob"]
                writer.writerow(flat)
    n_bad = len(files) + len(problems) - ok
    if n_bad:
        warn(f"{n_bad} input(s) could not be predicted (rows with an error field)")
    if args.out:
        warn(f"{ok} prediction(s) written to {args.out}")
    if ok == 0:
        warn("no image could be predicted")
        return 1
    return 0


def detect_rows(
    pred: Any, files: list[Any], batch_size: int, workers: int, draw: str | None
) -> Iterator[dict[str, Any]]:
    """One row per file: ``detections`` (box xyxy pixels, score, label) and ``count``."""
    from pathlib import Path

    from cvpipe.engine.detect_predictor import save_drawn

    classes = pred.card.classes
    used: set[str] = set()
    for res in pred.predict_paths(files, batch_size=batch_size, workers=workers):
        if res.error is not None:
            yield {"file": str(res.path), "error": res.error}
            continue
        det = res.output
        row: dict[str, Any] = {"file": str(res.path), "count": len(det["scores"])}
        row["detections"] = [
            {"box": [round(float(v), 2) for v in b], "score": round(float(sc), 6),
             "label": classes[int(k)]}
            for b, sc, k in zip(det["boxes"], det["scores"], det["labels"], strict=True)
        ]  # fmt: skip
        if draw:
            name = f"{res.path.stem}.jpg"
            if name in used:
                name = f"{res.path.stem}_{res.index}.jpg"
            used.add(name)
            save_drawn(res.path, det, classes, Path(draw) / name, pred.card.orientation)
            row["drawn"] = str(Path(draw) / name)
        yield row


def run_detect(args: argparse.Namespace, pred: Any, files: list[Any], problems: list[Any]) -> int:
    """``cvpipe predict`` for a detect run: JSON lines or CSV (one row per box)."""
    from cvpipe.io import atomic_open

    thr = args.score_thresh
    if thr is None:
        thr = (pred.card.extra or {}).get("thresholds", {}).get("count_score", 0.5)
    pred.set_postprocess(
        score_thresh=float(thr), nms_iou=args.nms_iou, detections_per_img=args.max_detections
    )
    header = ["file", "label", "score", "x1", "y1", "x2", "y2", "error"]
    ok = 0
    with contextlib.ExitStack() as stack:
        f: IO[str] = stack.enter_context(atomic_open(args.out)) if args.out else sys.stdout
        writer = csv.DictWriter(f, fieldnames=header) if args.format == "csv" else None
        if writer is not None:
            writer.writeheader()
        missing = ({"file": item, "error": why} for item, why in problems)
        found = detect_rows(pred, files, args.batch_size, args.workers, args.draw)
        for row in itertools.chain(missing, found):
            ok += "error" not in row
            if writer is None:
                _write_json(f, row)
            elif "error" in row:
                writer.writerow({"file": row["file"], "error": row["error"]})
            else:
                for d in row["detections"]:
                    x1, y1, x2, y2 = d["box"]
                    writer.writerow({"file": row["file"], "label": d["label"], "score": d["score"],
                                     "x1": x1, "y1": y1, "x2": x2, "y2": y2})  # fmt: skip
    n_bad = len(files) + len(problems) - ok
    if n_bad:
        warn(f"{n_bad} input(s) could not be predicted (rows with an error field)")
    if args.draw:
        warn(f"drawn images written to {args.draw}")
    if ok == 0:
        warn("no image could be predicted")
        return 1
    return 0
