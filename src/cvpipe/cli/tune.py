"""Hyperparameter search with Optuna: run or resume a study, show its status and results."""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
from typing import Any

from cvpipe.cli.output import echo, table

HELP = "hyperparameter search with Optuna (local or shared storage)"
EXAMPLES = """
  cvpipe tune --config recipes/seed001_tune.yaml
  cvpipe tune --config tune.yaml --max-trials 8 --max-parallel 2 --set objective.metric=val.accuracy
  cvpipe tune --config tune.yaml --storage postgresql://me@db:5432/optuna --study bins-r50   # on each machine
  cvpipe tune status tune/seed001
  cvpipe tune results tune/seed001 --csv trials.csv
  cvpipe tune results bins-r50 --storage postgresql://me@db:5432/optuna
  cvpipe train --from-trial tune/seed001:best --set epochs=10 --out runs/best

tune.yaml holds the dataset, the base train config, the search space (any train key:
float/int ranges, log scale, categorical lists), the objective (metric, direction),
max_trials, max_parallel, strategy (bayesian | random | grid | hyperband) and pruning.
Every trial is a run directory OUT/trials/trial_NNNN. The study lives in
sqlite:///OUT/study.db unless --storage says otherwise; running the same command again
resumes it (after a crash or kill too). Results: OUT/results.csv and OUT/report.html.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=["run", "status", "results"],
        help="run (default) or resume a study; status / results of STUDY",
    )
    p.add_argument(
        "study_ref",
        nargs="?",
        metavar="STUDY",
        help="tune output directory or study name (status, results)",
    )
    p.add_argument("--dataset", help="dataset directory (overrides the config's dataset)")
    p.add_argument("--out", help="output directory (trials, study.db, results)")
    p.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host:5432/db")
    p.add_argument("--study", help="study name (default: the name of --out)")
    p.add_argument("--max-trials", type=int, help="trials in the study")
    p.add_argument("--max-parallel", type=int, help="trial processes on this machine")
    p.add_argument(
        "--strategy", choices=["bayesian", "random", "grid", "hyperband"], help="search strategy"
    )
    p.add_argument("--seed", type=int, help="sampler seed")
    p.add_argument(
        "--warm-start-from",
        metavar="STUDY",
        help="queue the best parameters of an earlier study first",
    )
    p.add_argument("--csv", metavar="FILE", help="results: also write the table as CSV")
    p.add_argument("--html", metavar="FILE", help="results: also write the HTML report")
    p.add_argument("--top", type=int, help="results: show only the best N trials")


def run(args: argparse.Namespace) -> int:
    from cvpipe.tune.workers import quiet_optuna

    quiet_optuna(logging.INFO if args.verbose >= 2 else logging.ERROR)
    if args.action == "run":
        return _run_study(args)
    if not args.study_ref:
        from cvpipe.errors import ConfigError

        raise ConfigError(
            f"tune {args.action}: give the STUDY (a tune output directory or a study name)"
        )
    from cvpipe.tune import storage as S

    study = S.load_study(S.resolve_study(args.study_ref, args.storage))
    if args.action == "status":
        return _status(study)
    return _results(study, args)


def _run_study(args: argparse.Namespace) -> int:
    from cvpipe.config import load_config
    from cvpipe.tune.config import TuneConfig
    from cvpipe.tune.tuner import tune

    values = {
        "dataset": args.dataset, "out": args.out, "storage": args.storage, "study": args.study,
        "max_trials": args.max_trials, "max_parallel": args.max_parallel, "strategy": args.strategy,
        "seed": args.seed, "warm_start_from": args.warm_start_from,
    }  # fmt: skip
    config = load_config(TuneConfig, args.config, args.overrides, values)
    metric = config.objective.metric

    def on_trial(t: Any) -> None:
        value = "-" if t.value is None else f"{t.value:.4g}"
        dur = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else 0.0
        )
        params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        extra = t.user_attrs.get("error") or t.user_attrs.get("skipped") or ""
        echo(f"trial {t.number:>3}  {t.state.name:<8}  {metric}={value:<8}  {dur:6.1f} s  {params}"
             + (f"  ({extra})" if extra else ""))  # fmt: skip

    result = tune(config, on_trial=on_trial)
    from cvpipe.tune import storage as S

    study = S.load_study(S.resolve_study(str(result.out)))
    echo()
    _print_table(study, top=10)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.counts.items()))
    echo(f"\nstudy {result.study} ({result.storage}): {counts}")
    if result.best is not None:
        echo(
            f"best trial {result.best.number}: {metric}={result.best.value:.4g}  run {result.best.run_dir}"
        )
        echo(
            f"retrain it longer: cvpipe train --from-trial {result.out}:best --set epochs=... --out runs/best"
        )
    echo(f"results: {result.csv}  report: {result.report}")
    return 0


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _print_table(study: Any, top: int | None = None) -> None:
    from cvpipe.tune.report import param_names, summarize

    rows = summarize(study)
    shown = rows[:top] if top else rows
    metric = study.user_attrs.get("cvpipe.objective", {}).get("metric", "objective")
    names = param_names(rows)
    echo(
        table(
            [[r.number, *[_short(r.params[n]) if n in r.params else None for n in names], r.state, r.value,
              _time(r.start), _time(r.end), _dur(r.duration_s), r.note] for r in shown],
            ["#", *names, "state", metric, "start", "end", "duration", "note"],
            title=f"trials of {study.study_name} sorted by {metric} ({study.direction.name.lower()})"
            + (f", best {len(shown)} of {len(rows)}" if len(shown) < len(rows) else ""),
        )
    )  # fmt: skip


def _time(t: _dt.datetime | None) -> str | None:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else None


def _dur(s: float | None) -> str | None:
    if s is None:
        return None
    m, sec = divmod(int(round(s)), 60)
    return f"{m}m{sec:02d}s" if m else f"{s:.1f}s"


def _status(study: Any) -> int:
    import optuna

    from cvpipe.tune.report import summarize

    rows = summarize(study)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    obj = study.user_attrs.get("cvpipe.objective", {})
    metric = obj.get("metric", "objective")
    budget = study.user_attrs.get("cvpipe.max_trials")
    done = sum(counts.get(s, 0) for s in ("COMPLETE", "PRUNED"))
    echo(f"study {study.study_name}: {study.direction.name.lower()} {metric}")
    echo(
        f"trials: {done} finished of {budget or '?'}; "
        + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    )
    best = next((r for r in rows if r.state == "COMPLETE"), None)
    if best is not None:
        params = ", ".join(f"{k}={_short(v)}" for k, v in best.params.items())
        echo(f"best: trial {best.number}  {metric}={best.value:.4g}  {params}")
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if running:
        now = _dt.datetime.now()
        echo(
            table(
                [[t.number, t.user_attrs.get("host"), t.user_attrs.get("pid"), _time(t.datetime_start),
                  _dur((now - t.datetime_start).total_seconds()) if t.datetime_start else None,
                  ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())] for t in running],
                ["#", "host", "pid", "start", "running", "params"],
                title="running",
            )
        )  # fmt: skip
    return 0


def _results(study: Any, args: argparse.Namespace) -> int:
    from cvpipe.tune.report import summarize, write_csv, write_html

    _print_table(study, top=args.top)
    if args.csv:
        echo(f"CSV written to {write_csv(summarize(study), args.csv)}")
    if args.html:
        echo(f"report written to {write_html(study, args.html)}")
    return 0
