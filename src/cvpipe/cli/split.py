"""Seeded, stratified train/val/test split written into a dataset's manifest."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table
from cvpipe.config import load_config
from cvpipe.tasks.registry import get_task

HELP = "seeded, stratified train/val/test split"
EXAMPLES = """
  cvpipe split datasets/bins --ratios 70/20/10 --seed 0
  cvpipe split datasets/bins --ratios 80/20 --test-per-class 100      # seed 001
  cvpipe split datasets/planes --ratios 0.8,0.2                       # detection: rarest class + object count
  cvpipe split datasets/shots --ratios 70/20/10 --group-pattern '^(\\w+)_\\d+'
  cvpipe split datasets/scenes --keep-existing                        # keep imagefolder train/val/test

Same seed + same manifest = same split (whatever the manifest's line order).
Existing splits are kept with --keep-existing, overwritten with --force, refused otherwise.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset directory (its manifest.jsonl is rewritten)")
    p.add_argument(
        "--ratios", help="train/val[/test], e.g. 70/20/10, 80/20 or 0.8,0.2 (default 80/20)"
    )
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument(
        "--test-per-class",
        type=int,
        metavar="N",
        help="exactly N images per class into test; --ratios then splits the rest into train/val",
    )
    p.add_argument(
        "--no-stratify",
        dest="stratify",
        action="store_false",
        default=None,
        help="shuffle without keeping class proportions",
    )
    p.add_argument(
        "--group-key",
        metavar="meta.FIELD",
        help="images with equal values stay in one split (meta.FIELD, id or file)",
    )
    p.add_argument(
        "--group-pattern",
        metavar="REGEX",
        help="regex on the file name; its first group names the group",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--keep-existing",
        action="store_true",
        default=None,
        help="keep splits already assigned; split only the rest",
    )
    mode.add_argument(
        "--force", action="store_true", default=None, help="overwrite splits already assigned"
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.data.split import SplitConfig, split_dataset

    cfg = load_config(
        SplitConfig,
        args.config,
        args.overrides,
        {
            "ratios": args.ratios,
            "seed": args.seed,
            "test_per_class": args.test_per_class,
            "stratify": args.stratify,
            "group_key": args.group_key,
            "group_pattern": args.group_pattern,
            "keep_existing": args.keep_existing,
            "force": args.force,
        },
    )
    res = split_dataset(args.dataset, cfg)
    names = list(res.counts)
    rows = []
    for c, name in enumerate(res.classes):
        total = sum(res.counts[s][c] for s in names)
        rows.append([name, *(_cell(res.counts[s][c], total) for s in names), total])
    grand = sum(res.images.values())
    rows.append(["(images)", *(_cell(res.images[s], grand) for s in names), grand])
    unit = "images" if get_task(res.task).one_class_per_image else "images with class"
    ratios = "/".join(f"{v * 100:g}" for v in res.ratios.values())
    echo(
        table(
            rows,
            ["class", *names, "total"],
            title=f"{unit} per split (ratios {'/'.join(res.ratios)} = {ratios}, seed {cfg.seed}):",
        )
    )
    echo(f"\n{res.assigned} images assigned; manifest updated in {res.dataset}")
    return 0


def _cell(n: int, total: int) -> str:
    pct = 100.0 * n / total if total else 0.0
    return f"{n} ({pct:.1f}%)"
