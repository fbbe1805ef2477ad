"""Import speed and memory: cvpipe's streaming importers vs a naive full-decode importer.

Generates synthetic Pascal VOC (LabelImg-style XML + JPEG: next to each other, ``voc``, and
in ``annotations/`` + ``images/``, ``voc_tree``, where cvpipe finds each image through one
index of the tree) and Amazon-bin (metadata JSON + JPEG) sets — images are hard links to a small pool of 640x480 photos-like JPEGs, so 50k
records cost little disk — then imports each with

- cvpipe (``cvpipe.data.importers.run_import``, what ``cvpipe import`` runs: header-only
  sizes, records streamed to the manifest),
- a naive importer written the usual way: parse each annotation, fully decode each image
  to learn its size, keep every record in a list, dump JSON at the end.

Each importer runs in its own fresh process so its peak RSS is its own. The naive one
runs on a subset (it is slow) and is compared by images/s. cvpipe also imports a tenth of
the records, so the RESULT shows how its peak RSS grows with the number of images.

    python benchmarks/import_speed.py            # 50k records per format
    python benchmarks/import_speed.py --quick    # 3k records per format
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from common import parser, report, run_isolated
from PIL import Image

POOL = 48
W, H = 640, 480


def make_pool(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    pool = []
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(POOL):
        base = (np.sin(xx / (20 + i)) + np.cos(yy / (15 + i))) * 60 + 128
        arr = (
            np.stack([base + rng.normal(0, 20, (H, W)) for _ in range(3)], -1)
            .clip(0, 255)
            .astype(np.uint8)
        )
        p = root / f"pool_{i}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        pool.append(p)
    return pool


def make_voc(root: Path, n: int, pool: list[Path], tree: bool = False) -> None:
    """LabelImg XML next to each image, or (``tree``) ``annotations/`` + ``images/``."""
    ann, img = (root / "annotations", root / "images") if tree else (root, root)
    ann.mkdir(parents=True, exist_ok=True)
    img.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"img_{i:06d}.jpg"
        os.link(pool[i % POOL], img / name)
        x1, y1 = 10 + i % 50, 20 + i % 40
        xml = (
            f"<annotation><folder>imgs</folder><filename>{name}</filename>"
            f"<path>C:\\Users\\me\\imgs\\{name}</path><size><width>{W}</width><height>{H}</height><depth>3</depth></size>"
            f"<object><name>{'burger' if i % 3 else 'fries'}</name><difficult>0</difficult><truncated>0</truncated>"
            f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x1 + 200}</xmax><ymax>{y1 + 150}</ymax></bndbox></object>"
            "</annotation>"
        )
        (ann / f"img_{i:06d}.xml").write_text(xml)


def make_amazon(root: Path, n: int, pool: list[Path]) -> None:
    meta, imgs = root / "metadata", root / "bin-images"
    meta.mkdir(parents=True, exist_ok=True)
    imgs.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        os.link(pool[i % POOL], imgs / f"{i}.jpg")
        q = 1 + i % 5
        items = {
            f"B{i:09d}": {
                "asin": f"B{i:09d}",
                "name": "Thing",
                "quantity": q,
                "height": {"unit": "IN", "value": 4.2},
                "length": {"unit": "IN", "value": 4.7},
                "width": {"unit": "IN", "value": 4.4},
                "weight": {"unit": "pounds", "value": 0.45},
            }
        }
        (meta / f"{i}.json").write_text(
            json.dumps({"BIN_FCSKU_DATA": items, "EXPECTED_QUANTITY": q, "image_fname": f"{i}.jpg"})
        )


def cvpipe_import(fmt: str, src: str, out: str, images: str | None) -> int:
    """What ``cvpipe import`` does: stream records to disk, print a summary."""
    from cvpipe.data.importers import ImportOptions, run_import

    summary = run_import(fmt, src, out, ImportOptions(images=images))
    return int(summary.info.import_report["images"])


def naive_import(fmt: str, src: str, out: str, images: str | None, limit: int) -> int:
    records = []
    if fmt in ("voc", "voc_tree"):
        tree = fmt == "voc_tree"
        files = sorted((Path(src) / "annotations" if tree else Path(src)).glob("*.xml"))[:limit]
        for x in files:
            root = ET.parse(x).getroot()
            img = (Path(src) / "images" if tree else Path(src)) / root.findtext("filename", "")
            with Image.open(img) as im:
                rgb = im.convert("RGB")  # full decode, the usual way to "check" an image
            boxes = [
                [float(o.findtext(f"bndbox/{k}", "0")) for k in ("xmin", "ymin", "xmax", "ymax")]
                for o in root.iter("object")
            ]
            labels = [o.findtext("name") for o in root.iter("object")]
            records.append(
                {
                    "file": str(img),
                    "width": rgb.width,
                    "height": rgb.height,
                    "boxes": boxes,
                    "labels": labels,
                }
            )
    else:
        files = sorted(Path(src).glob("*.json"))[:limit]
        for m in files:
            obj = json.loads(m.read_text())
            img = Path(images or "") / obj["image_fname"]
            with Image.open(img) as im:
                rgb = im.convert("RGB")
            records.append(
                {
                    "file": str(img),
                    "width": rgb.width,
                    "height": rgb.height,
                    "count": obj["EXPECTED_QUANTITY"],
                    "meta": obj,
                }
            )
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "manifest.json").write_text(json.dumps(records))
    return len(records)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    n = 3000 if args.quick else 50000
    n_naive = 600 if args.quick else 5000
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cvpipe-bench-import-"))
    try:
        pool = make_pool(work / "pool")
        make_voc(work / "voc", n, pool)
        make_voc(work / "voc_tree", n, pool, tree=True)
        make_amazon(work / "abid", n, pool)
        figures: dict[str, float] = {}
        details: dict[str, dict[str, float]] = {}
        cases = {
            "voc": (str(work / "voc"), None),
            "voc_tree": (str(work / "voc_tree"), None),
            "amazon": (str(work / "abid" / "metadata"), str(work / "abid" / "bin-images")),
        }
        make_voc(work / "voc_small", n // 10, pool)
        make_voc(work / "voc_tree_small", n // 10, pool, tree=True)
        make_amazon(work / "abid_small", n // 10, pool)
        small = {
            "voc": (str(work / "voc_small"), None),
            "voc_tree": (str(work / "voc_tree_small"), None),
            "amazon": (
                str(work / "abid_small" / "metadata"),
                str(work / "abid_small" / "bin-images"),
            ),
        }
        for key, (src, images) in cases.items():
            fmt = "amazon-bin" if key == "amazon" else "voc"
            t_c, rss_c, n_c = run_isolated(
                cvpipe_import, fmt, src, str(work / f"out_c_{key}"), images
            )
            t_n, rss_n, n_n = run_isolated(
                naive_import,
                key,
                src,
                str(work / f"out_n_{key}"),
                images,
                n_naive,
            )
            ips_c, ips_n = n_c / t_c, n_n / t_n
            details[key] = {
                "cvpipe_images": n_c,
                "cvpipe_img_per_s": round(ips_c, 1),
                "cvpipe_peak_rss_mib": round(rss_c, 1),
                "naive_images": n_n,
                "naive_img_per_s": round(ips_n, 1),
                "naive_peak_rss_mib": round(rss_n, 1),
            }
            print(
                f"{key:7s} cvpipe {n_c} images {ips_c:8.1f} img/s peak {rss_c:6.1f} MiB | "
                f"naive {n_n} images {ips_n:8.1f} img/s peak {rss_n:6.1f} MiB",
                flush=True,
            )
            figures[f"{key}_speedup"] = round(ips_c / ips_n, 1)
            _, rss_small, _ = run_isolated(
                cvpipe_import, fmt, small[key][0], str(work / f"out_s_{key}"), small[key][1]
            )
            details[key]["cvpipe_peak_rss_mib_at_tenth"] = round(rss_small, 1)
            figures[f"{key}_rss_mib"] = round(rss_c, 1)
            figures[f"{key}_rss_growth_mib"] = round(rss_c - rss_small, 1)
        figures["records"] = n
        report("import_speed", figures, details)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
