"""List the registered models: classifiers and detectors, their task, size, input and weights."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cvpipe.cli.output import echo, table
from cvpipe.tasks.registry import BUILTIN, get_task, task_names

HELP = "list the registered classifiers and detectors"
USES_CONFIG = False
EXAMPLES = """
  cvpipe models                    # every registered classifier and detector
  cvpipe models --task detect      # detectors only (classify / count: the classifiers)
  cvpipe models 'resnet*'          # shell-style pattern
  cvpipe models 'timm/*lite*'      # timm architectures usable as timm/<name>
  cvpipe models --json

Columns: task (classifiers train classify and count datasets, detectors detect ones);
params (classifiers: with a 1000-class head; detectors: for 80 classes); input (default
input size); imagenet (where a classifier's, or a detector's backbone's, ImageNet weights
come from: package, store, cache (torch / Hugging Face), download (published, fetched on
first use unless CVPIPE_OFFLINE=1 / --offline) or none); coco (detectors whose whole
COCO-trained weights --weights coco loads: cache, download or a package). '*' marks each
task's default model (what 'cvpipe train' uses without --model).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "pattern", nargs="?", help="shell-style name filter, e.g. 'resnet*' or 'timm/*lite*'"
    )
    p.add_argument("--task", choices=task_names(), help="only the models that train this task")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def _timm(args: argparse.Namespace) -> int:
    import timm

    pattern = args.pattern
    names = [f"timm/{n}" for n in timm.list_models(pattern[len("timm/") :] or "*")]
    if args.json:
        echo(
            json.dumps([{"name": n, "family": "timm", "task": "classify"} for n in names], indent=2)
        )
    else:
        echo("\n".join(names) if names else f"no timm architecture matches {pattern!r}")
        echo(f"\n{len(names)} timm architectures; build one with --model timm/<name>")
    return 0


def _rows(pattern: str | None, task: str | None) -> list[dict[str, Any]]:
    from cvpipe.engine.defaults import TASK_DEFAULTS
    from cvpipe.models.classification import list_models
    from cvpipe.models.coco_weights import coco_availability
    from cvpipe.models.detection import list_detectors
    from cvpipe.models.weight_sources import availability

    defaults = {t: c[0].model for t, c in TASK_DEFAULTS.items() if c}
    rows: list[dict[str, Any]] = []
    # classifiers train tasks with one class per image, detectors tasks with objects;
    # without --task the table names the built-in tasks
    wanted = [task] if task else list(BUILTIN)
    image_tasks = [t for t in wanted if get_task(t).one_class_per_image]
    object_tasks = [t for t in wanted if not get_task(t).one_class_per_image]
    if image_tasks:
        for i in list_models(pattern):
            tasks = image_tasks
            rows.append(
                {
                    **vars(i), "kind": "classifier", "task": ",".join(tasks),
                    "imagenet": availability(i.name), "coco": "-",
                    "default": any(defaults.get(t) == i.name for t in tasks),
                }
            )  # fmt: skip
    if object_tasks:
        for d in list_detectors(pattern):
            rows.append(
                {
                    **vars(d), "kind": "detector", "task": ",".join(object_tasks),
                    "imagenet": availability(d.backbone), "coco": coco_availability(d.name),
                    "default": any(defaults.get(t) == d.name for t in object_tasks),
                }
            )  # fmt: skip
    return rows


def run(args: argparse.Namespace) -> int:
    pattern = args.pattern
    if pattern and pattern.startswith("timm/"):
        return _timm(args)
    rows = _rows(pattern, args.task)
    if args.json:
        echo(json.dumps(rows, indent=2))
        return 0
    if not rows:
        what = f" for task {args.task}" if args.task else ""
        echo(f"no registered model matches {pattern!r}{what}; run 'cvpipe models' for the list")
        return 1
    lines = [
        [
            r["name"] + (" *" if r["default"] else ""), r["task"], r["family"],
            _millions(r["params"]), r["input_size"], r["imagenet"], r["coco"],
        ]
        for r in rows
    ]  # fmt: skip
    echo(table(lines, ["model", "task", "family", "params", "input", "imagenet", "coco"]))
    notes = []
    if any(r["default"] for r in rows):
        notes.append("* the task's default model ('cvpipe train' without --model)")
    if any("download" in (r["imagenet"], r["coco"]) for r in rows):
        from cvpipe.models.download import offline_reason

        reason = offline_reason()
        notes.append(
            f"'download': not on this machine; downloads are off ({reason}): "
            "'cvpipe weights download NAME' on a networked machine"
            if reason
            else "'download': fetched (and cached) on first use; 'cvpipe weights download NAME' fetches ahead"
        )
    if not args.task or get_task(args.task).one_class_per_image:
        notes.append("any other timm architecture: --model timm/<name> (cvpipe models 'timm/*')")
    echo("\n" + "\n".join(notes))
    return 0
