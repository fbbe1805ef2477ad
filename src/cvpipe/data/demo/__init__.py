"""Synthetic demo datasets, generated offline and deterministically.

``generate(out)`` writes::

    out/raw/amazon-bin/bin-images/00001.jpg   bin photos, 1-5 items each
    out/raw/amazon-bin/metadata/00001.json    Amazon Bin Image Dataset metadata
    out/raw/voc/food_0001.{jpg,xml}           LabelImg-style Pascal VOC (burger, fries, drink)
    out/counting/                             dataset (task count, classes 1..5), split 70/20/10
    out/detection/                            dataset (task detect), split 70/20/10
    out/demo.json                             what was generated, with which options

The two dataset directories reference the raw images (``image_root`` relative), so
``cvpipe import amazon-bin out/raw/amazon-bin/metadata --images out/raw/amazon-bin/bin-images``
and ``cvpipe import voc out/raw/voc`` rebuild equivalent datasets from the raw files.

Bin scenes are drawn from above: a plastic or cardboard tote (gradients, grain, ribs or
fibres, four shaded walls), items of a small product catalogue (boxes, round tins,
bottles, polygons, soft packages) in varied colours, sizes and rotations, with soft
shadows, partial overlap, elastic bands across some bins and a lighting gradient. Items
overlap only partly, so the count stays visible. Food scenes put burgers, fries and cups
on wood, cloth, tiles or trays; boxes are the exact pixel extent of each drawn object.

Everything is drawn with NumPy and Pillow (no fonts, no downloads); each image has its own
generator seeded from ``(seed, kind, index)``, so the same seed gives byte-identical files.

Modules: ``config`` (options, result), ``drawing`` (colours, noise, shadows, placement),
``bins`` (bin scenes and the product catalogue), ``food`` (food scenes and their boxes),
``writers`` (raw Amazon-bin / VOC files and the datasets), ``generator`` (entry points).

Example:
    >>> res = generate("demo/data", per_class=20, size=96)  # doctest: +SKIP
    >>> res.counting  # doctest: +SKIP
    PosixPath('demo/data/counting')
"""

from __future__ import annotations

from cvpipe.data.demo.bins import SHAPES, render_bin
from cvpipe.data.demo.config import MARKER, DemoConfig, DemoResult
from cvpipe.data.demo.drawing import SS
from cvpipe.data.demo.food import FOOD, render_food
from cvpipe.data.demo.generator import generate, generate_demo
from cvpipe.data.demo.writers import voc_xml

__all__ = [
    "FOOD",
    "MARKER",
    "SHAPES",
    "SS",
    "DemoConfig",
    "DemoResult",
    "generate",
    "generate_demo",
    "render_bin",
    "render_food",
    "voc_xml",
]
