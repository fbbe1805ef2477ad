"""Pre-resize a dataset's images into memory-mapped shards for fast repeated epochs."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table
from cvpipe.config import load_config

HELP = "pre-resize images into shards for fast repeated epochs"
EXAMPLES = """
  cvpipe pack datasets/bins --size 256 --out packs/bins256
  cvpipe train datasets/bins --model resnet50 --set pack=packs/bins256 --out runs/r50

Images are decoded once (JPEG draft decode), their shorter side resized to --size and the
pixels stored as uint8 shards; training with 'pack: PACKDIR' then decodes nothing.
Unreadable images are left out and listed in PACKDIR/index.json ("problems").
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset directory (from 'cvpipe import')")
    p.add_argument("--out", required=True, help="pack directory to write")
    p.add_argument(
        "--size", type=int, help="shorter side of the stored images in pixels (default 256)"
    )
    p.add_argument("--shard-mb", type=int, help="target shard size in MiB (default 512)")
    p.add_argument("--workers", type=int, help="decode threads (default: min(8, CPUs))")
    p.add_argument("--splits", help="comma-separated splits to pack (default: all records)")


def run(args: argparse.Namespace) -> int:
    from cvpipe.data.pack import PackConfig, pack_dataset

    config = load_config(
        PackConfig,
        args.config,
        args.overrides,
        {
            "size": args.size,
            "shard_mb": args.shard_mb,
            "workers": args.workers,
            "splits": args.splits.split(",") if args.splits else None,
        },
    )
    res = pack_dataset(args.dataset, args.out, config)
    echo(
        table(
            [
                ["images", res.images],
                ["shards", res.shards],
                ["MiB", round(res.bytes / 2**20, 1)],
                ["unreadable", len(res.problems)],
            ],
            ["", "value"],
            title=f"pack written to {res.path}",
        )
    )
    return 0
