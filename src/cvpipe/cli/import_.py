"""Import a labelled image set into a cvpipe dataset directory (manifest.jsonl + dataset.yaml)."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table
from cvpipe.config import load_config
from cvpipe.tasks.registry import get_task, task_names

HELP = "import a labelled image set"
EXAMPLES = """
  cvpipe import imagefolder scenes/ --out datasets/scenes
  cvpipe import amazon-bin abid/metadata --images abid/bin-images --out datasets/bins --counts 1-5
  cvpipe import amazon-bin file_list.json --images abid/bin-images --out datasets/bins
  cvpipe import openimages oidv7-train-annotations-bbox.csv --images oi/train \\
      --descriptions oidv7-class-descriptions-boxable.csv --classes Airplane --out datasets/planes
  cvpipe import voc labelimg/ --out datasets/burgers
  cvpipe import voc VOC2012/ --out datasets/voc         # Annotations/ + JPEGImages/
  cvpipe import voc burgers/ --out datasets/burgers     # annotations/ + images/, no --images
  cvpipe import imagefolder phone_photos/ --out datasets/photos --exif apply
  cvpipe import coco instances_train.json --images coco/train --out datasets/coco
  cvpipe import yolo yolo_dataset/ --out datasets/yolo

Images are referenced, never modified (--copy copies them into OUT/images).
voc finds each XML's image by file name anywhere under SOURCE; a name found in two
folders is reported (image_ambiguous) and --images FOLDER chooses.
--exif apply: photos whose EXIF orientation says "turn me" are used as a viewer shows
them, in training, eval, predict and serve alike; width, height and boxes are recorded
in that oriented frame (boxes converted from the stored pixels). Default: keep the
stored pixels (cvpipe validate reports EXIF orientations).
Problems (broken files, boxes outside images, ...) are listed in OUT/import_report.json.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from cvpipe.data.importers import IMPORTERS

    p.add_argument(
        "format",
        choices=IMPORTERS.names(),
        metavar="FORMAT",
        help=f"one of: {', '.join(IMPORTERS.names())}",
    )
    p.add_argument("source", help="annotation file or folder to import")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--images", help="image folder, when images are kept apart from the annotations")
    p.add_argument("--task", choices=task_names(), help="override the format's task")
    p.add_argument(
        "--classes", help="comma-separated classes to keep, in order (names or Open Images MIDs)"
    )
    p.add_argument("--counts", help="amazon-bin: count range kept, e.g. 1-5 (default) or 0-5")
    p.add_argument("--descriptions", help="openimages: class-descriptions CSV (MID,name)")
    p.add_argument(
        "--min-confidence",
        type=float,
        help="openimages: ignore rows below this confidence (default 0.5)",
    )
    p.add_argument("--copy", action="store_true", default=None, help="copy images into OUT/images")
    p.add_argument(
        "--on-error",
        choices=["fail", "skip"],
        help="stop at the first unusable file, or skip and report it (default)",
    )
    p.add_argument("--name", help="dataset name (default: output folder name)")
    p.add_argument(
        "--exif",
        choices=["keep", "apply"],
        help="keep the stored pixel orientation (default) or apply each photo's EXIF orientation",
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.data.importers import ImportOptions, run_import

    options = load_config(
        ImportOptions,
        args.config,
        args.overrides,
        {
            "images": args.images,
            "task": args.task,
            "classes": args.classes,
            "counts": args.counts,
            "descriptions": args.descriptions,
            "min_confidence": args.min_confidence,
            "copy_images": args.copy,
            "on_error": args.on_error,
            "name": args.name,
            "exif": args.exif,
        },
    )
    result = run_import(args.format, args.source, args.out, options)
    info = result.info
    summary = info.import_report
    unit = get_task(info.task).unit
    rows = [[c, n] for c, n in zip(info.classes, result.class_counts, strict=True)]
    echo(
        table(
            rows,
            ["class", unit],
            title=f"{info.name}: {summary['images']} images, task {info.task}",
        )
    )
    problems = summary.get("problems", {})
    if problems:
        echo("")
        echo(
            table(
                sorted(problems.items()),
                ["problem", "count"],
                title="problems (details in import_report.json):",
            )
        )
    echo(f"\ndataset written to {args.out}")
    return 0
