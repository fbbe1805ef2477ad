"""Write a cvpipe dataset as COCO JSON, Pascal VOC XML, YOLO labels or an ImageFolder tree."""

from __future__ import annotations

import argparse

from cvpipe.cli.output import echo, table
from cvpipe.config import load_config

HELP = "write a dataset as coco, voc, yolo or imagefolder"
EXAMPLES = """
  cvpipe export-data datasets/burgers --format voc --out exports/burgers-voc
  cvpipe export-data datasets/burgers --format coco --out exports/burgers-coco --copy
  cvpipe export-data datasets/burgers --format yolo --out exports/burgers-yolo
  cvpipe export-data datasets/scenes --format imagefolder --out exports/scenes --link

coco, voc and yolo write detect datasets; imagefolder writes classify and count ones.
Images are referenced (coco: file_name relative to the dataset's image root; voc: <path>;
yolo: symbolic links under OUT/images) unless --copy; imagefolder copies unless --link.
OUT must be new or empty; the source dataset is never modified. Read an export back
with 'cvpipe import FORMAT OUT ...'.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from cvpipe.data.exporters import EXPORTERS

    p.add_argument("dataset", help="dataset directory (from 'cvpipe import')")
    p.add_argument(
        "--format",
        required=True,
        choices=EXPORTERS.names(),
        metavar="FORMAT",
        help=f"one of: {', '.join(EXPORTERS.names())}",
    )
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--copy",
        dest="copy_images",
        action="store_true",
        default=None,
        help="copy the images into OUT",
    )
    g.add_argument(
        "--link",
        dest="copy_images",
        action="store_false",
        help="reference the images instead of copying them",
    )


def run(args: argparse.Namespace) -> int:
    from cvpipe.data.exporters import ExportOptions, export_dataset
    from cvpipe.data.manifest import Dataset

    options = load_config(
        ExportOptions, args.config, args.overrides, {"copy_images": args.copy_images}
    )
    ds = Dataset.load(args.dataset)
    out = export_dataset(ds, args.format, args.out, **options.model_dump())
    rows = [
        [str(split) if split is not None else "-", n]
        for split, n in sorted(ds.splits().items(), key=lambda kv: str(kv[0]))
    ]
    echo(
        table(
            rows,
            ["split", "images"],
            title=f"{ds.info.name}: {len(ds)} images, task {ds.task}, {len(ds.classes)} classes",
        )
    )
    if args.format == "coco" and not options.copy_images:
        echo(
            f"\nimages stay in {ds.image_root.resolve()}; read back with --images {ds.image_root.resolve()}"
        )
    echo(f"\nexported as {args.format} to {out}")
    return 0
