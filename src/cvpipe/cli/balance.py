"""Undersample / oversample classes into a new dataset directory; write class weights."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table
from cvpipe.config import load_config

HELP = "undersample / oversample classes; write class weights"
EXAMPLES = """
  cvpipe balance datasets/bins --strategy undersample --out datasets/bins-balanced   # seed 002
  cvpipe balance datasets/bins --strategy oversample --out datasets/bins-over
  cvpipe balance datasets/bins --strategy target --per-class 500 --out datasets/bins-500
  cvpipe balance datasets/bins --strategy target --target 1:300,2:400 --out datasets/bins-t
  cvpipe balance datasets/bins --strategy undersample --splits all --out datasets/bins-all

Only the train split is resampled unless --splits says otherwise (balanced val/test sets
change what their metrics mean). Detection images are balanced by their rarest class.
The new dataset references the same images (nothing is copied); class weights
(inverse frequency, mean 1, computed on train) go to dataset.yaml and class_weights.json.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="source dataset directory (never modified)")
    p.add_argument("--out", required=True, help="new dataset directory to write")
    p.add_argument(
        "--strategy", choices=["undersample", "oversample", "target"], help="default undersample"
    )
    p.add_argument("--splits", help="comma-separated splits to resample (default train), or 'all'")
    p.add_argument("--per-class", type=int, metavar="N", help="strategy target: N images per class")
    p.add_argument(
        "--target",
        metavar="CLASS:N,...",
        help="strategy target: per-class targets, e.g. 1:300,2:400",
    )
    p.add_argument("--seed", type=int, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from cvpipe.data.balance import BalanceConfig, balance_dataset

    cfg = load_config(
        BalanceConfig,
        args.config,
        args.overrides,
        {
            "out": args.out,
            "strategy": args.strategy,
            "splits": args.splits,
            "per_class": args.per_class,
            "target": args.target,
            "seed": args.seed,
        },
    )
    res = balance_dataset(args.dataset, cfg)
    _print_counts(
        res.classes,
        res.before,
        res.after,
        f"{res.unit}, before → after ({cfg.strategy}; resampled: {', '.join(res.balanced)}):",
    )
    if res.objects_after:
        echo("")
        _print_counts(
            res.classes, res.objects_before, res.objects_after, "objects per class, before → after:"
        )
    echo("")
    echo(
        table(
            [[c, w] for c, w in zip(res.classes, res.class_weights, strict=True)],
            ["class", "weight"],
            title="class weights (train, inverse frequency, mean 1):",
        )
    )
    echo(f"\nbalanced dataset written to {res.out} (images referenced, not copied)")
    return 0


def _print_counts(
    classes: list[str], before: dict[str, list[int]], after: dict[str, list[int]], title: str
) -> None:
    names = list(after)
    rows = []
    for c, name in enumerate(classes):
        rows.append(
            [name, *(f"{before.get(s, [0] * len(classes))[c]} → {after[s][c]}" for s in names)]
        )
    rows.append(["(total)", *(f"{sum(before.get(s, []))} → {sum(after[s])}" for s in names)])
    echo(table(rows, ["class", *names], title=title))
