"""Writing the demo sets: raw Amazon-bin and LabelImg VOC files, and the two datasets.

Images are rendered in worker processes when asked (:func:`_run`, results in job order,
so the bytes do not depend on the number of workers) and written directly; each set is
then saved as a cvpipe dataset that references the raw images and split 70/20/10.

Example:
    >>> print(voc_xml("a.jpg", 64, 64, [[0, 0, 10, 10]], ["burger"]))  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cvpipe.data.demo.bins import Product, product_catalogue, render_bin
from cvpipe.data.demo.config import DemoConfig
from cvpipe.data.demo.food import FOOD, render_food
from cvpipe.data.manifest import Dataset, DatasetInfo, Record, SourceInfo
from cvpipe.data.split import SplitConfig, split_dataset
from cvpipe.progress import Bar


def _jpeg(img: Image.Image, quality: int) -> bytes:
    """JPEG bytes of ``img`` (encoded in the worker, written by the parent)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _amazon_meta(fname: str, items: list[tuple[Product, int]]) -> dict[str, Any]:
    """The Amazon Bin Image Dataset metadata JSON of one bin (``EXPECTED_QUANTITY`` etc.)."""
    data: dict[str, Any] = {}
    for p, q in items:
        h, length, w, wt = p.dims
        data[p.asin] = {
            "asin": p.asin,
            "height": {"unit": "IN", "value": h},
            "length": {"unit": "IN", "value": length},
            "name": p.name,
            "normalizedName": p.name,
            "quantity": q,
            "weight": {"unit": "pounds", "value": wt},
            "width": {"unit": "IN", "value": w},
        }
    return {
        "BIN_FCSKU_DATA": data,
        "EXPECTED_QUANTITY": sum(q for _, q in items),
        "image_fname": fname,
    }


def voc_xml(fname: str, width: int, height: int, boxes: list[list[int]], names: list[str]) -> str:
    """A LabelImg-style Pascal VOC annotation.

    ``boxes`` are cvpipe xyxy pixel edges; VOC corners are 1-based and inclusive, so
    ``[x1, y1, x2, y2]`` is written as ``xmin=x1+1, ymin=y1+1, xmax=x2, ymax=y2``.
    """
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "voc"
    ET.SubElement(root, "filename").text = fname
    ET.SubElement(root, "path").text = fname
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "Unknown"
    size = ET.SubElement(root, "size")
    for tag, dim in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(dim)
    ET.SubElement(root, "segmented").text = "0"
    for b, name in zip(boxes, names, strict=True):
        obj = ET.SubElement(root, "object")
        for tag, text in (
            ("name", name),
            ("pose", "Unspecified"),
            ("truncated", "0"),
            ("difficult", "0"),
        ):
            ET.SubElement(obj, tag).text = text
        bb = ET.SubElement(obj, "bndbox")
        corners = (b[0] + 1, b[1] + 1, b[2], b[3])  # VOC: 1-based, inclusive
        for tag, coord in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
            ET.SubElement(bb, tag).text = str(int(coord))
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def _bin_job(job: tuple[int, int, int, int, int]) -> tuple[bytes, str, list[dict[str, Any]]]:
    seed, index, count, size, quality = job
    img, items = render_bin(seed, index, count, size, product_catalogue(seed))
    meta = _amazon_meta(f"{index:05d}.jpg", items)
    return (
        _jpeg(img, quality),
        json.dumps(meta, indent=4) + "\n",
        [{"asin": p.asin, "name": p.name, "quantity": q} for p, q in items],
    )


def _food_job(job: tuple[int, int, int, int]) -> tuple[bytes, list[list[int]], list[int]]:
    seed, index, size, quality = job
    img, boxes, labels = render_food(seed, index, size)
    return _jpeg(img, quality), boxes, labels


def _run(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> Iterator[Any]:
    """Map ``fn`` over ``jobs`` in order; in worker processes when ``workers > 1``."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, jobs, chunksize=8)


def write_counting(out: Path, cfg: DemoConfig, bar: Bar, workers: int) -> int:
    """Render the bin set: raw Amazon-bin images + metadata, then ``out/counting`` (70/20/10).

    Returns:
        The number of images written.
    """
    raw = out / "raw" / "amazon-bin"
    (raw / "bin-images").mkdir(parents=True, exist_ok=True)
    (raw / "metadata").mkdir(parents=True, exist_ok=True)
    counts = np.repeat(np.arange(1, 6), cfg.per_class)
    counts = counts[np.random.default_rng([cfg.seed, 7]).permutation(len(counts))].tolist()
    jobs = [(cfg.seed, i, c, cfg.size, cfg.quality) for i, c in enumerate(counts, start=1)]
    records = []
    for (_, i, count, _, _), (jpeg, meta, items) in zip(
        jobs, _run(_bin_job, jobs, workers), strict=True
    ):
        stem = f"{i:05d}"
        (raw / "bin-images" / f"{stem}.jpg").write_bytes(jpeg)
        (raw / "metadata" / f"{stem}.json").write_text(meta, encoding="utf-8")
        records.append(
            Record(
                id=stem,
                file=f"{stem}.jpg",
                width=cfg.size,
                height=cfg.size,
                count=count,
                meta={
                    "expected_quantity": count,
                    "image_fname": f"{stem}.jpg",
                    "metadata": f"{stem}.json",
                    "items": items,
                },
            )
        )
        bar.update()
    info = DatasetInfo(
        name="counting",
        task="count",
        classes=[str(c) for c in range(1, 6)],
        image_root="../raw/amazon-bin/bin-images",
        source=SourceInfo(format="amazon-bin", path="../raw/amazon-bin/metadata"),
        import_report={"images": len(records)},
        history=[f"demo-data seed={cfg.seed} per_class={cfg.per_class} size={cfg.size}"],
    )
    return _save_split(out / "counting", info, records, cfg.seed)


def write_detection(out: Path, cfg: DemoConfig, bar: Bar, total: int, workers: int) -> int:
    """Render ``total`` food images with LabelImg VOC XML, then ``out/detection`` (70/20/10).

    Returns:
        The number of images written.
    """
    voc = out / "raw" / "voc"
    voc.mkdir(parents=True, exist_ok=True)
    size = int(round(cfg.size * 1.25))
    jobs = [(cfg.seed, i, size, cfg.quality) for i in range(1, total + 1)]
    records = []
    n_boxes = 0
    for (_, i, _, _), (jpeg, boxes, labels) in zip(
        jobs, _run(_food_job, jobs, workers), strict=True
    ):
        stem = f"food_{i:04d}"
        (voc / f"{stem}.jpg").write_bytes(jpeg)
        (voc / f"{stem}.xml").write_text(
            voc_xml(f"{stem}.jpg", size, size, boxes, [FOOD[c] for c in labels]), encoding="utf-8"
        )
        records.append(
            Record(
                id=stem,
                file=f"{stem}.jpg",
                width=size,
                height=size,
                boxes=[[float(v) for v in b] for b in boxes],
                labels=labels,
            )
        )
        n_boxes += len(boxes)
        bar.update()
    info = DatasetInfo(
        name="detection",
        task="detect",
        classes=list(FOOD),
        image_root="../raw/voc",
        source=SourceInfo(format="voc", path="../raw/voc"),
        import_report={"images": len(records), "boxes": n_boxes},
        history=[f"demo-data seed={cfg.seed} images={total} size={size}"],
    )
    return _save_split(out / "detection", info, records, cfg.seed)


def _save_split(root: Path, info: DatasetInfo, records: list[Record], seed: int) -> int:
    """Save a demo dataset, split it 70/20/10 with ``seed``; returns its number of images."""
    Dataset(root, info, records).save()
    split_dataset(root, SplitConfig(ratios="70/20/10", seed=seed))
    return len(records)
