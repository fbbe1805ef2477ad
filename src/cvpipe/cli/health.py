"""Re-analyse a finished run's training health (rules table, findings.json, report.html)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cvpipe.cli.output import echo, table

HELP = "re-analyse a run's training health with other thresholds"
EXAMPLES = """
  cvpipe health runs/r50                                   # rules table of the recorded run
  cvpipe health runs/r50 --set rules.StepOutlier.stddev=4 --set rules.StepOutlier.n_outliers=20
  cvpipe health runs/r50 --set rules.DeadReLU.action=off --all
  cvpipe health --list                                     # every rule, its parameters and defaults

Reads RUN/health/trace.jsonl (recorded during 'cvpipe train'), runs the rules with the
run's own health settings, then --config FILE (a health section, or a train config with a
'health:' key), then --set overrides on top; rewrites RUN/health/findings.json and
RUN/health/report.html. Settings: rules.NAME.PARAM=VALUE, rules.NAME.action=warn|stop|save|off.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", help="run directory written by 'cvpipe train'")
    p.add_argument("--all", action="store_true", help="show every rule, not only those that fired")
    p.add_argument("--no-report", action="store_true", help="rewrite findings.json only (no HTML)")
    p.add_argument(
        "--list", action="store_true", help="list the rules with their parameters and exit"
    )


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def resolve_config(run: Path, config_path: str | None, overrides: list[str]) -> Any:
    """The run's health settings, then ``--config``, then ``--set``.

    Raises:
        ConfigError: bad YAML, unknown rule or parameter (with suggestions).
    """
    from cvpipe.config import load_config, read_yaml
    from cvpipe.engine.health.config import HealthConfig

    data: dict[str, Any] = {}
    run_cfg = run / "config.yaml"
    if run_cfg.is_file():
        data = dict(read_yaml(run_cfg).get("health") or {})
    if config_path:
        extra = read_yaml(config_path)
        extra = extra.get("health", extra) if isinstance(extra.get("health"), dict) else extra
        data = {**_flatten(data), **_flatten(extra)}
    return load_config(HealthConfig, values=_flatten(data), overrides=overrides)


def summary_lines(findings: list[Any], *, all_rules: bool = False) -> list[str]:
    """The rules table (fired rules, or all) and one line per fired rule, as text lines."""
    from cvpipe.engine.health.report import params_text

    shown = [f for f in findings if f.fired or all_rules]
    lines: list[str] = []
    if shown:
        rows = [
            [f.rule, f.triggered, f.datapoints, f.action, params_text(f.parameters)] for f in shown
        ]
        lines.append(table(rows, ["rule", "triggered", "data points", "action", "parameters"]))
    fired = [f for f in findings if f.fired]
    for f in fired:
        lines.append(f"{f.rule}: {f.messages[0] if f.messages else ''}")
        lines.append(f"  → {f.recommendation}")
    if not fired:
        lines.append(f"health: no rule fired ({len(findings)} rules checked)")
    return lines


def _list_rules() -> int:
    from cvpipe.engine.health.report import params_text
    from cvpipe.engine.health.rules import RULES

    rows = [
        [n, RULES.get(n).default_action, params_text(RULES.get(n).defaults)] for n in RULES.names()
    ]
    echo(table(rows, ["rule", "action", "parameters (defaults)"]))
    for n in RULES.names():
        echo(f"\n{n}: {RULES.get(n).description}")
    return 0


def run(args: argparse.Namespace) -> int:
    from cvpipe.engine.health.report import analyse_run
    from cvpipe.errors import ConfigError

    if args.list:
        return _list_rules()
    if not args.run:
        raise ConfigError("health: give the RUN directory (e.g. cvpipe health runs/r50), or --list")
    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise ConfigError(
            f"{run_dir}: not a run directory (train one with 'cvpipe train ... --out {run_dir}')"
        )
    config = resolve_config(run_dir, args.config, list(args.overrides))
    res = analyse_run(run_dir, config, report=not args.no_report)
    for line in summary_lines(res.findings, all_rules=args.all):
        echo(line)
    echo(f"\nfindings: {res.findings_path}")
    if res.report is not None:
        echo(f"report:   {res.report}")
    return 0
