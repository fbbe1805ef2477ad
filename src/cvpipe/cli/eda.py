"""Exploratory report of a dataset: class balance, image sizes, boxes, samples (HTML + JSON)."""

from __future__ import annotations

import argparse
from typing import Any

from cvpipe.cli.output import echo, table
from cvpipe.config import load_config

HELP = "exploratory report: class balance, sizes, boxes, samples (HTML + JSON)"
EXAMPLES = """
  cvpipe eda datasets/bins
  cvpipe eda datasets/planes --samples-per-class 12 --seed 1 --out reports/planes_eda
  cvpipe eda datasets/scenes --hash          # find duplicate files without running validate

Writes OUT/report.html (one self-contained file: open it offline, mail it) and OUT/eda.json
(OUT defaults to DATASET/eda). Sizes come from the manifest; only the sampled thumbnails are
decoded and a sample of file headers is read. Duplicates are summarised from
DATASET/validation.json when 'cvpipe validate' ran, else computed only with --hash.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset directory (from 'cvpipe import')")
    p.add_argument("--out", metavar="DIR", help="output folder (default: DATASET/eda)")
    p.add_argument(
        "--samples-per-class",
        type=int,
        metavar="N",
        help="thumbnails per class (default 8; 0: none)",
    )
    p.add_argument("--seed", type=int, help="seed of the sampled thumbnails (default 0)")
    p.add_argument(
        "--hash",
        action="store_true",
        default=None,
        help="hash files to find duplicates (when no validation.json)",
    )
    p.add_argument(
        "--thumb-size", type=int, metavar="PX", help="thumbnail side in pixels (default 96)"
    )
    p.add_argument(
        "--workers", type=int, metavar="N", help="hashing threads (default: all CPU cores)"
    )
    p.add_argument(
        "--no-html", dest="html", action="store_false", default=None,
        help="write eda.json only (no plots, no thumbnails)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from cvpipe.data.eda import EdaConfig, eda

    cfg = load_config(
        EdaConfig,
        args.config,
        args.overrides,
        {
            "out": args.out,
            "samples_per_class": args.samples_per_class,
            "seed": args.seed,
            "hash": args.hash,
            "thumb_size": args.thumb_size,
            "workers": args.workers,
            "html": args.html,
        },
    )
    stats = eda(args.dataset, **cfg.model_dump())
    _print_summary(stats)
    return 0


def _print_summary(s: dict[str, Any]) -> None:
    splits = ", ".join(f"{k} {v}" for k, v in s["splits"].items())
    echo(
        f"{s['name']}: {s['images']} images, {len(s['classes'])} classes, task {s['task']} ({splits})"
    )
    dist = s["class_distribution"]
    cols = [k for k in dist if k != "all"]
    rows = [[c, *(dist[k][c] for k in cols), dist["all"][c]] for c in s["classes"]]
    echo("")
    echo(table(rows, ["class", *cols, "all"], title=f"{s['unit']} per class:"))
    imb = s["imbalance"]
    if imb["ratio"] is not None:
        echo(
            f"\nimbalance (max/min): {imb['ratio']:.2f} ({imb['max_class']} {imb['max_count']} / {imb['min_class']} {imb['min_count']})"
        )
    w, h = s["sizes"]["width"], s["sizes"]["height"]
    if w["median"] is not None:
        echo(
            f"image size: median {w['median']:g}x{h['median']:g}, width {w['min']:g}..{w['max']:g}, height {h['min']:g}..{h['max']:g}"
        )
    if "boxes" in s:
        b = s["boxes"]
        sizes = ", ".join(f"{k} {v}" for k, v in b["coco_sizes"].items())
        echo(f"boxes: {b['boxes']} ({b['mean_boxes_per_image']} per image; {sizes})")
    if "counts" in s:
        echo(f"mean count: {s['counts']['mean']}")
    if s["advice"]:
        echo("\nadvice:")
        for item in s["advice"]:
            echo(f"  [{item['level']}] {item['text']}")
            if item["command"]:
                echo(f"      {item['command']}")
    if s["outputs"]["html"]:
        echo(f"\nreport: {s['outputs']['html']}")
    echo(f"data:   {s['outputs']['json']}")
