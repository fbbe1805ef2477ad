"""Decode every image of a dataset, check labels and boxes, find duplicates and split leaks."""

from __future__ import annotations

import argparse
from typing import Any

from cvpipe.cli.output import echo, table, warn
from cvpipe.config import load_config

HELP = "decode every image, check boxes, find duplicates; report or clean"
EXAMPLES = """
  cvpipe validate datasets/bins                       # report only (exit 0)
  cvpipe validate datasets/bins --on-error fail       # exit 1 if any error-severity problem
  cvpipe validate datasets/planes --on-error skip     # clean the manifest in place
  cvpipe validate datasets/planes --on-error skip --out datasets/planes_clean

Every finding (file, kind, severity, message, action) is written to DATASET/validation.json.
Policies:
  report  list problems; nothing else changes (default)
  fail    like report, then exit 1 when any error-severity problem was found
  skip    write a cleaned manifest: unreadable images, bad labels, duplicate ids and
          copies leaking across splits are left out; boxes outside the image are clipped,
          zero-area / NaN boxes dropped, wrong manifest sizes corrected.
          Without --out the cleaned manifest replaces DATASET/manifest.jsonl and the
          original is kept once as DATASET/manifest.orig.jsonl; with --out DIR a new
          dataset directory is written and DATASET is left as it was.
Image files are never modified. Left-out records are listed in validation.json "left_out".
"""

_EXAMPLES_PER_KIND = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset directory (from 'cvpipe import')")
    p.add_argument(
        "--on-error",
        choices=["report", "fail", "skip"],
        help="report (default), fail or skip; see below",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="with --on-error skip: write the cleaned dataset here instead of in place",
    )
    p.add_argument(
        "--workers", type=int, metavar="N", help="decoding threads (default: all CPU cores)"
    )
    p.add_argument(
        "--no-hash",
        dest="hash",
        action="store_false",
        default=None,
        help="do not hash files (no duplicate/leak check)",
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.data.validate import ValidateConfig, ValidationReport, validate
    from cvpipe.errors import ConfigError, ValidationFailed

    cfg = load_config(
        ValidateConfig,
        args.config,
        args.overrides,
        {"on_error": args.on_error, "out": args.out, "workers": args.workers, "hash": args.hash},
    )
    if cfg.out is not None and cfg.on_error != "skip":
        raise ConfigError(
            "--out is only used with --on-error skip (it receives the cleaned dataset)"
        )
    try:
        report: ValidationReport = validate(args.dataset, **cfg.model_dump())
    except ValidationFailed as exc:
        failed: Any = getattr(exc, "report", None)
        if failed is not None:
            _print_report(failed)
        raise
    _print_report(report)
    return 0


def _print_report(report: Any) -> None:
    s = report.summary
    echo(
        f"{s['dataset']}: {s['images']} images checked in {s['seconds']:.1f}s: "
        f"{s['errors']} errors, {s['warnings']} warnings, {s['info']} info"
    )
    counts = report.counts()
    if counts:
        rows = []
        for kind, n in counts.items():
            first = report.examples(kind, 1)[0]
            rows.append([kind, first.severity, n, f"{first.file}: {first.message}"])
        echo("")
        echo(table(rows, ["problem", "severity", "count", "first example"]))
        _print_examples(report, counts)
    else:
        echo("no problems found")
    if s.get("duplicate_groups"):
        echo(
            f"\n{s['duplicate_groups']} groups of identical files ({s['leaks']} copies leak across splits)"
        )
    if s["policy"] == "skip":
        _print_skip(report)
    elif s["errors"]:
        echo("\nto write a cleaned manifest: cvpipe validate DATASET --on-error skip [--out DIR]")
    echo(f"\nreport: {report.report_path}")


def _print_examples(report: Any, counts: dict[str, int]) -> None:
    more = [(k, n) for k, n in counts.items() if n > 1]
    if not more:
        return
    echo("\nexamples:")
    for kind, n in more:
        for p in report.examples(kind, _EXAMPLES_PER_KIND):
            echo(f"  {kind}: {p.file}: {p.message} -> {p.action}")
        if n > _EXAMPLES_PER_KIND:
            echo(f"  {kind}: ... {n - _EXAMPLES_PER_KIND} more in validation.json")


def _print_skip(report: Any) -> None:
    s = report.summary
    left = report.left_out
    echo(
        f"\nleft out {len(left)} of {s['images']} records; clipped {s['boxes_clipped']} boxes, dropped {s['boxes_dropped']}"
    )
    for item in left[:10]:
        echo(f"  {item['id']}  {item['file']}  ({', '.join(item['reasons'])})")
    if len(left) > 10:
        echo(f"  ... {len(left) - 10} more in validation.json")
    if s.get("written"):
        echo(f"cleaned manifest: {s['written']}")
        if s.get("original_manifest"):
            echo(f"original manifest kept as {s['original_manifest']}")
    else:
        warn("nothing to clean; the manifest is unchanged")
