"""Tell what this install can do: versions against the lock, hardware, weights, services."""

from __future__ import annotations

import argparse
import json

from cvpipe.cli.output import echo, table

HELP = "check this install: versions vs the lock, CPU/GPU, weights, chromium, PostgreSQL"
USES_CONFIG = False
EXAMPLES = """
  cvpipe doctor                 # the table; exit 1 only when a required piece is broken
  cvpipe doctor --json          # the same as JSON (name, status, detail, fix per check)
  cvpipe doctor --no-weights    # skip the scan of offline pretrained weights

Status: ok; warn (works, but not as tested or not at full speed); missing (an optional
piece is absent, the features that need it are off); fail (a required piece is broken).
Every line that is not ok says how to fix it. Versions are compared with
requirements/lock.txt when cvpipe runs from a source checkout (make venv / make demo).
"""

MARK = {"ok": "ok", "warn": "WARN", "missing": "-", "fail": "FAIL"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--no-weights", action="store_true", help="skip the pretrained-weights scan (faster)"
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.doctor import as_json, run_checks

    checks = run_checks(weights=not args.no_weights)
    failed = [c for c in checks if c.status == "fail"]
    if args.json:
        echo(json.dumps(as_json(checks), indent=2))
        return 1 if failed else 0
    echo(table([[c.name, MARK[c.status], c.detail] for c in checks], ["check", "status", "detail"]))
    fixes = [c for c in checks if c.status != "ok" and c.fix]
    if fixes:
        echo("\nto fix:")
        for c in fixes:
            echo(f"  {c.name}: {c.fix}")
    if failed:
        echo(f"\n{len(failed)} required piece(s) broken: {', '.join(c.name for c in failed)}")
        return 1
    echo("\ncvpipe can run here" + (" (optional pieces marked '-' are off)" if fixes else ""))
    return 0
