"""Generate the synthetic demo datasets (bin counting + food detection), offline and deterministic."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table
from cvpipe.config import load_config

HELP = "generate the bundled synthetic demo datasets"
EXAMPLES = """
  cvpipe demo-data --out demo/data
  cvpipe demo-data --out demo/small --size 64 --per-class 10 --seed 1

Writes OUT/counting and OUT/detection (cvpipe datasets, split 70/20/10) and the raw files
they reference: OUT/raw/amazon-bin/{bin-images,metadata} (Amazon Bin Image Dataset format)
and OUT/raw/voc (LabelImg Pascal VOC XML next to the JPEGs), so these work too:
  cvpipe import amazon-bin OUT/raw/amazon-bin/metadata --images OUT/raw/amazon-bin/bin-images --out datasets/bins
  cvpipe import voc OUT/raw/voc --out datasets/food
The same seed gives byte-identical files. Nothing is downloaded.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", required=True, help="output folder (new, empty, or an earlier demo-data output)"
    )
    p.add_argument(
        "--size", type=int, help="bin image side in pixels (default 128; food images are 1.25x)"
    )
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument(
        "--per-class", type=int, metavar="N", help="bin images per count 1..5 (default 80)"
    )
    p.add_argument(
        "--detect-images",
        type=int,
        metavar="N",
        help="food images (default 1.875 x per-class, 150)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="render processes (default: automatic); output does not depend on it",
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.data.demo import DemoConfig, generate_demo

    cfg = load_config(
        DemoConfig,
        args.config,
        args.overrides,
        {
            "size": args.size,
            "seed": args.seed,
            "per_class": args.per_class,
            "detect_images": args.detect_images,
            "workers": args.workers,
        },
    )
    res = generate_demo(args.out, cfg)
    rows = [
        ["counting dataset (count 1-5)", res.counting_images, str(res.counting)],
        ["detection dataset (burger, fries, drink)", res.detection_images, str(res.detection)],
        ["raw Amazon-bin images + metadata", res.counting_images, str(res.amazon_bin)],
        ["raw LabelImg VOC images + XML", res.detection_images, str(res.voc)],
    ]
    echo(
        table(
            rows,
            ["what", "images", "path"],
            title=f"demo data (seed {cfg.seed}) written to {res.out}:",
        )
    )
    return 0
