"""``cvpipe VERB ...`` entry point.

Verbs are a table of (name, module, summary). Only the module of the verb being run is
imported, so ``cvpipe --help`` and data verbs start without loading torch.

Each verb module defines::

    HELP: str                      # one line
    EXAMPLES: str                  # shown at the end of --help
    def add_arguments(p): ...      # argparse flags of the verb
    def run(args) -> int: ...      # exit code
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from types import ModuleType

from cvpipe import progress
from cvpipe.errors import CvpipeError
from cvpipe.registry import suggest

VERBS: list[tuple[str, str, str]] = [
    (
        "import",
        "import_",
        "import a labelled image set (imagefolder, amazon-bin, openimages, voc, coco, yolo)",
    ),
    ("export-data", "export_data", "write a dataset as coco, voc, yolo or imagefolder"),
    ("validate", "validate", "decode every image, check boxes, find duplicates; report or clean"),
    ("eda", "eda", "exploratory report: class balance, sizes, boxes, samples (HTML + JSON)"),
    ("audit", "audit", "near-duplicates, split leaks, label errors, outliers, size shortcuts"),
    ("split", "split", "seeded, stratified train/val/test split"),
    ("balance", "balance", "undersample / oversample classes; write class weights"),
    ("pack", "pack", "pre-resize images into shards for fast repeated epochs"),
    ("models", "models", "list the registered classifiers and detectors"),
    ("weights", "weights", "list, add, verify and download pretrained weights"),
    ("train", "train", "train a classifier, counter or detector into a run directory"),
    ("eval", "eval", "evaluate a run on a dataset split; metrics, plots, HTML report"),
    ("compare", "compare", "compare runs side by side with paired statistics"),
    ("predict", "predict", "predict images with a run or a running server"),
    ("tune", "tune", "hyperparameter search with Optuna (local or shared storage)"),
    ("health", "health", "re-analyse a run's training health with other thresholds"),
    ("export", "export", "export a run to ONNX"),
    ("serve", "serve", "serve a run over a REST API with a web page"),
    ("demo-data", "demo_data", "generate the bundled synthetic demo datasets"),
    ("doctor", "doctor", "check this install: versions vs the lock, CPU/GPU, weights, services"),
]


def _load(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"cvpipe.cli.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"cvpipe.cli.{module}":
            return None
        raise


def _available() -> list[tuple[str, str, str]]:
    return [v for v in VERBS if importlib.util.find_spec(f"cvpipe.cli.{v[1]}") is not None]


def _top_parser() -> argparse.ArgumentParser:
    verbs = _available()
    width = max(len(v[0]) for v in verbs) if verbs else 10
    listing = "\n".join(f"  {name:<{width}}  {summary}" for name, _, summary in verbs)
    return argparse.ArgumentParser(
        prog="cvpipe",
        description="cvpipe: from a labelled image set to a served model, on one machine, offline.",
        epilog=f"verbs:\n{listing}\n\nRun 'cvpipe VERB --help' for a verb's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="cvpipe [--version] VERB [options]",
    )


def add_common(p: argparse.ArgumentParser, config: bool = True) -> None:
    """Flags every verb shares."""
    g = p.add_argument_group("common options")
    if config:
        g.add_argument(
            "--config", metavar="FILE", help="YAML config file (flags and --set override it)"
        )
        g.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set seed=3 (repeatable; dotted keys reach sections)",
        )
    g.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_verb_parser(name: str, module: ModuleType) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"cvpipe {name}",
        description=module.__doc__.strip().splitlines()[0] if module.__doc__ else module.HELP,
        epilog="examples:\n" + module.EXAMPLES.strip("\n")
        if getattr(module, "EXAMPLES", "")
        else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(p)
    add_common(p, config=getattr(module, "USES_CONFIG", True))
    return p


def _setup_logging(args: argparse.Namespace) -> None:
    """The CLI prints results itself; cvpipe's log lines appear with -v (INFO) or -vv (DEBUG)."""
    level = logging.WARNING
    if args.verbose == 1:
        level = logging.INFO
    elif args.verbose >= 2:
        level = logging.DEBUG
    if args.quiet:
        level = logging.ERROR
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("cvpipe").setLevel(level)
    force = os.environ.get("CVPIPE_PROGRESS")
    progress.enable(
        not args.no_progress and (force == "1" or (force != "0" and sys.stderr.isatty()))
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        _top_parser().print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        from cvpipe.version import __version__

        print(f"cvpipe {__version__}")
        return 0
    name = argv[0]
    table = {v[0]: v for v in VERBS}
    module = _load(table[name][1]) if name in table else None
    if module is None:
        hint = suggest(name, [v[0] for v in _available()])
        print(
            f"cvpipe: unknown verb {name!r}; {hint}run 'cvpipe --help' for the list",
            file=sys.stderr,
        )
        return 2
    args = build_verb_parser(name, module).parse_args(argv[1:])
    _setup_logging(args)
    try:
        return int(module.run(args) or 0)
    except CvpipeError as exc:
        print(f"cvpipe {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"cvpipe {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cvpipe ... | head`: the reader went away; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
