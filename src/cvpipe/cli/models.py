"""List the registered models: family, parameters, input size, offline ImageNet weights."""

from __future__ import annotations

import argparse
import json

from cvpipe.cli.output import echo, table

HELP = "list the registered models"
USES_CONFIG = False
EXAMPLES = """
  cvpipe models                    # every registered model
  cvpipe models 'resnet*'          # shell-style pattern
  cvpipe models 'timm/*lite*'      # timm architectures usable as timm/<name>
  cvpipe models --json

params counts the backbone plus the default head for 1000 classes (the ImageNet
convention); 'weights' says where ImageNet weights resolve offline on this machine
(store, torch-cache, hf-cache, package) or '-' (see 'cvpipe weights list').
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "pattern", nargs="?", help="shell-style name filter, e.g. 'resnet*' or 'timm/*lite*'"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def _timm_names(pattern: str) -> list[str]:
    import timm

    return [f"timm/{n}" for n in timm.list_models(pattern[len("timm/") :] or "*")]


def run(args: argparse.Namespace) -> int:
    from cvpipe.models.classification import list_models

    pattern = args.pattern
    if pattern and pattern.startswith("timm/"):
        names = _timm_names(pattern)
        if args.json:
            echo(json.dumps([{"name": n, "family": "timm"} for n in names], indent=2))
        else:
            echo("\n".join(names) if names else f"no timm architecture matches {pattern!r}")
            echo(f"\n{len(names)} timm architectures; build one with --model timm/<name>")
        return 0
    infos = list_models(pattern)
    if args.json:
        echo(json.dumps([vars(i) for i in infos], indent=2))
        return 0
    if not infos:
        echo(f"no registered model matches {pattern!r}; run 'cvpipe models' for the list")
        return 1
    rows = [
        [
            i.name,
            i.family,
            _millions(i.params),
            _millions(i.backbone_params),
            i.feature_dim,
            i.input_size,
            i.weights or "-",
        ]
        for i in infos
    ]
    echo(table(rows, ["model", "family", "params", "backbone", "features", "input", "weights"]))
    echo(
        "\nany other timm architecture: --model timm/<name> (list them with: cvpipe models 'timm/*')"
    )
    return 0
