"""Shared plumbing for benchmark scripts: arguments, peak RSS in a child, RESULT line."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import queue
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="short version (under a minute)")
    p.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    return p


def _child(fn: Callable[..., Any], args: tuple[Any, ...], q: Any) -> None:
    t0 = time.perf_counter()
    value = fn(*args)
    elapsed = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    q.put((elapsed, peak_kb / 1024.0, value))


def run_isolated(fn: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    """Run ``fn(*args)`` in a fresh process; returns (seconds, peak RSS MiB, return value)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, q))
    proc.start()
    while True:  # a child that dies (exception, OOM kill) must not leave us waiting forever
        try:
            result = q.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive():
                proc.join()
                raise RuntimeError(
                    f"benchmark child failed with exit code {proc.exitcode}"
                ) from None
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"benchmark child failed with exit code {proc.exitcode}")
    return result


def report(name: str, figures: dict[str, Any], details: dict[str, Any]) -> None:
    """Print the one-line RESULT and write benchmarks/results/NAME.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "result": figures,
        "details": details,
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
