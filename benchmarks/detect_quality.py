"""Detector recipes on real photos: test mAP and CPU minutes, side by side in one run.

Imports a Pascal VOC set (default ``../shared/devdata/raccoon``: ``images/`` and
``annotations/`` siblings), splits it 70/15/15 with a fixed seed, then trains each
recipe with ``cvpipe train`` and scores its best checkpoint on the **test** split with
``cvpipe eval`` (COCO mAP@.5 and mAP@[.5:.95]):

- ``recommended``: ``recipes/detect_coco_ssd_mnv2.yaml`` (the detect default: the
  COCO-trained SSD-MobileNetV2 converted offline, ``weights: coco``);
- ``seed004``: ``recipes/seed004_ssdlite_mnv2.yaml`` (ImageNet MobileNetV2 + SSDLite)
  with its epochs capped by ``--seed004-epochs`` so that both recipes get a comparable
  CPU budget.

The recipes train side by side (both at once, same ``nice``), so machine load hits both
alike. Time is reported as wall minutes and as **CPU minutes** of the training process
and its loader workers (user + system): on a shared machine wall time inflates with the
load while CPU time does not, so the CPU budget is the figure to compare with "15 min on
a 2-core CPU" (30 CPU-minutes). CPU count and load averages are recorded.

    python benchmarks/detect_quality.py --data ../shared/devdata/raccoon
    python benchmarks/detect_quality.py --quick        # synthetic demo set, 1 epoch each
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import parser, report

ROOT = Path(__file__).resolve().parent.parent
CV = [sys.executable, "-m", "cvpipe.cli.main"]
# Runs one command and prints its (and its descendants') CPU seconds as JSON.
_TIMED = (
    "import json, resource, subprocess, sys, time;"
    "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:]).returncode;"
    "r = resource.getrusage(resource.RUSAGE_CHILDREN);"
    "print(json.dumps({'rc': rc, 'cpu_s': r.ru_utime + r.ru_stime, 'wall_s': time.perf_counter() - t}))"
)


def cvpipe(*args: str, log: Path | None = None, nice: int = 0) -> dict[str, Any]:
    """Run ``cvpipe ARGS`` (niced), returning rc, CPU seconds and wall seconds."""
    cmd = [*(["nice", "-n", str(nice)] if nice else []), sys.executable, "-c", _TIMED, *CV, *args]
    env = {**os.environ, "CVPIPE_PROGRESS": "0", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if log is not None:
        log.write_text(out.stdout + out.stderr)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "{}"
    res: dict[str, Any] = json.loads(last) if last.startswith("{") else {"rc": out.returncode}
    if res.get("rc", 1) != 0:
        tail = (out.stdout + out.stderr)[-2000:]
        raise RuntimeError(f"cvpipe {' '.join(args[:3])} failed:\n{tail}")
    return res


def prepare(work: Path, data: Path | None) -> Path:
    ds = work / "ds"
    if data is None:  # --quick: the synthetic LabelImg VOC food set of `cvpipe demo-data`
        cvpipe("demo-data", "--out", str(work / "demo"), "--size", "96", "--per-class", "12")
        cvpipe("import", "voc", str(work / "demo" / "raw" / "voc"), "--out", str(ds))
    else:
        ann = data / "annotations" if (data / "annotations").is_dir() else data
        extra = ["--images", str(data / "images")] if (data / "images").is_dir() else []
        cvpipe("import", "voc", str(ann), *extra, "--out", str(ds))
    cvpipe("split", str(ds), "--ratios", "70/15/15", "--seed", "0", "--force")
    return ds


def train_and_eval(
    name: str, ds: Path, work: Path, recipe: Path, sets: list[str], nice: int, out: dict[str, Any]
) -> None:
    run = work / "runs" / name
    overrides = [a for s in sets for a in ("--set", s)]
    t = cvpipe("train", str(ds), "--config", str(recipe), "--out", str(run), *overrides,
               log=work / f"{name}.train.log", nice=nice)  # fmt: skip
    (work / f"{name}.time.json").write_text(json.dumps({**t, "recipe": str(recipe), "sets": sets}))
    out[name] = score(name, work)


def score(name: str, work: Path, stopped_cpu_min: float | None = None) -> dict[str, Any]:
    """Test mAP of ``work/runs/NAME``'s best checkpoint, its epochs and training time."""
    run = work / "runs" / name
    if not (run / "eval" / "metrics.json").is_file():
        cvpipe("eval", str(run), "--split", "test", "--no-report", log=work / f"{name}.eval.log")
    m = json.loads((run / "eval" / "metrics.json").read_text())
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    timing = work / f"{name}.time.json"
    t = json.loads(timing.read_text()) if timing.is_file() else {}
    cpu_min = t["cpu_s"] / 60 if "cpu_s" in t else stopped_cpu_min
    wall_min = t["wall_s"] / 60 if "wall_s" in t else sum(r["time_s"] for r in epochs) / 60
    return {
        "recipe": t.get("recipe", ""),
        "overrides": t.get("sets", []),
        "test_map50": round(float(m["map_50"] or 0.0), 4),
        "test_map": round(float(m["map"] or 0.0), 4),
        "train_cpu_min": round(cpu_min, 2) if cpu_min is not None else None,
        "train_wall_min": round(wall_min, 2),
        "epochs": len(epochs),
        "cpu_measured_by": "rusage" if "cpu_s" in t else "given (--collect)",
        "best_val_map50": round(
            max((float(r.get("val.mAP50") or 0) for r in epochs), default=0), 4
        ),
        "val_map50_per_epoch": [round(float(r.get("val.mAP50") or 0), 3) for r in epochs],
        "img_per_s": round(sum(r["img_per_s"] for r in epochs) / max(1, len(epochs)), 2),
    }


def figures_of(results: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, r in results.items():
        figures[f"{name}_map50"] = r["test_map50"]
        figures[f"{name}_map"] = r["test_map"]
        figures[f"{name}_cpu_min"] = r["train_cpu_min"]
        figures[f"{name}_wall_min"] = r["train_wall_min"]
        figures[f"{name}_epochs"] = r["epochs"]
    figures["cpus"] = os.cpu_count()
    figures["load1"] = round(os.getloadavg()[0], 1)
    return figures


def collect(work: Path, stopped: dict[str, str]) -> None:
    results = {
        run.name: score(run.name, work, float(stopped[run.name]) if run.name in stopped else None)
        for run in sorted((work / "runs").iterdir())
        if (run / "metrics.jsonl").is_file()
    }
    details = {"split": "70/15/15 seed 0, scored on test", "runs": results, "workdir": str(work),
               "load_avg": os.getloadavg(), "collected": True}  # fmt: skip
    report("detect_quality", figures_of(results), details)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "devdata" / "raccoon"),
                   help="VOC folder (images/ + annotations/)")  # fmt: skip
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "detect_coco_ssd_mnv2.yaml"))
    p.add_argument("--seed004-epochs", type=int, default=12,
                   help="epochs of the seed004 recipe (its own 60 would take hours on a CPU)")  # fmt: skip
    p.add_argument("--nice", type=int, default=5, help="nice level of both trainings")
    p.add_argument("--only", choices=["recommended", "seed004"], default=None)
    p.add_argument(
        "--collect",
        nargs="*",
        metavar="NAME=CPU_MIN",
        default=None,
        help="re-report --workdir's runs without training; for a run without its timing file "
        "(stopped by hand, or timed outside) give its CPU minutes, e.g. seed004=9.3; a stopped "
        "run's best checkpoint so far is scored",
    )
    args = p.parse_args()
    if args.collect is not None:
        collect(Path(args.workdir), dict(a.split("=", 1) for a in args.collect))
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="detect_quality-"))
    work.mkdir(parents=True, exist_ok=True)
    data = None if args.quick else Path(args.data)
    ds = prepare(work, data)
    quick = (
        ["epochs=1", "input_size=96", "batch_size=8", "detector.precise_bn=0"] if args.quick else []
    )
    plans = {
        "recommended": (Path(args.recipe), quick),
        "seed004": (ROOT / "recipes" / "seed004_ssdlite_mnv2.yaml",
                    quick or [f"epochs={args.seed004_epochs}"]),
    }  # fmt: skip
    if args.only:
        plans = {args.only: plans[args.only]}
    load0 = os.getloadavg()
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def job(name: str, recipe: Path, sets: list[str]) -> None:
        try:
            train_and_eval(name, ds, work, recipe, sets, args.nice, results)
        except BaseException as exc:  # reported after both finish
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(n, r, s)) for n, (r, s) in plans.items()]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    figures = figures_of(results)
    details = {
        "data": str(data) if data else "synthetic (cvpipe demo-data, 96 px)",
        "split": "70/15/15 seed 0, scored on test",
        "runs": results,
        "load_avg_before": load0,
        "load_avg_after": os.getloadavg(),
        "wall_min_both": round((time.perf_counter() - t0) / 60, 2),
        "workdir": str(work),
    }
    report("detect_quality" + ("_quick" if args.quick else ""), figures, details)


if __name__ == "__main__":
    main()
