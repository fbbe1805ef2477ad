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

Example:
    >>> res = generate("demo/data", per_class=20, size=96)  # doctest: +SKIP
    >>> res.counting  # doctest: +SKIP
    PosixPath('demo/data/counting')
"""

from __future__ import annotations

import colorsys
import io
import json
import logging
import math
import os
import shutil
import string
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from pydantic import Field

from cvpipe.config import Config, config_to_dict, load_config
from cvpipe.data.manifest import Dataset, DatasetInfo, Record, SourceInfo
from cvpipe.data.split import SplitConfig, split_dataset
from cvpipe.errors import DatasetError
from cvpipe.io import write_json
from cvpipe.progress import Bar

log = logging.getLogger(__name__)

SS = 2  # supersampling: draw at 2x, downsample once (smooth edges)
FOOD = ("burger", "drink", "fries")  # sorted, the order `cvpipe import voc` gives
MARKER = "demo.json"
RGB = tuple[int, int, int]


class DemoConfig(Config):
    """Options of ``cvpipe demo-data``.

    Attributes:
        seed: random seed; the same seed gives byte-identical files.
        size: side of the square bin images in pixels (food images are 1.25x).
        per_class: bin images per count class 1..5.
        detect_images: food images (default: ``round(1.875 * per_class)``, 150 at 80).
        quality: JPEG quality.
        workers: render processes (default: up to 8 for 200+ images, else 1); output is
            identical whatever the number.
    """

    seed: int = 0
    size: int = Field(default=128, ge=32, le=1024)
    per_class: int = Field(default=80, ge=1, le=100_000)
    detect_images: int | None = Field(default=None, ge=1)
    quality: int = Field(default=90, ge=30, le=100)
    workers: int | None = Field(default=None, ge=1, le=64)


@dataclass
class DemoResult:
    """Paths written by :func:`generate` and how many images each set has."""

    out: Path
    counting: Path
    detection: Path
    amazon_bin: Path
    voc: Path
    counting_images: int
    detection_images: int


# -- colours and textures -----------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _shade(c: RGB, f: float) -> RGB:
    return tuple(int(min(255, max(0, x * f))) for x in c)  # type: ignore[return-value]


def _rgba(c: RGB, a: int = 255) -> tuple[int, int, int, int]:
    return c[0], c[1], c[2], a


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1], shape (size, size)."""
    small = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img, dtype=np.float32) / 1.5, -1.5, 1.5)


def _finish(rng: np.random.Generator, scene: Image.Image, out_size: int) -> Image.Image:
    """Downsample to ``out_size``, then a lighting gradient, colour cast and sensor grain."""
    small = (
        scene.reduce(SS)
        if scene.width == out_size * SS
        else scene.resize((out_size, out_size), Image.Resampling.LANCZOS)
    )
    arr = np.asarray(small, dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    axis = np.linspace(-0.5, 0.5, out_size, dtype=np.float32)
    ramp = 1.0 + rng.uniform(0.1, 0.3) * (
        axis[None, :] * math.cos(angle) + axis[:, None] * math.sin(angle)
    )
    light = ramp * np.float32(rng.uniform(0.8, 1.15))
    cast = rng.uniform(0.93, 1.07, 3).astype(np.float32)
    grain = rng.standard_normal(arr.shape, dtype=np.float32) * 3.0
    arr = arr * light[..., None] * cast + grain
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _bin_background(
    rng: np.random.Generator, n: int
) -> tuple[Image.Image, tuple[int, int, int, int], RGB]:
    """A tote seen from above: floor, four shaded walls, texture. Returns (image, floor box, floor colour).

    The texture is drawn at output resolution and scaled up (only item edges need supersampling).
    """
    full, n = n, n // SS
    cardboard = rng.random() < 0.35
    if cardboard:
        base = _hsv(rng.uniform(0.06, 0.1), rng.uniform(0.35, 0.55), rng.uniform(0.55, 0.75))
    else:
        h = [0.6, 0.0, 0.13, 0.33, 0.58, 0.0][int(rng.integers(0, 6))]
        s = 0.0 if rng.random() < 0.3 else rng.uniform(0.4, 0.8)
        base = _hsv(h + rng.uniform(-0.02, 0.02), s, rng.uniform(0.25, 0.75))
    arr = np.empty((n, n, 3), np.float32)
    arr[:] = base
    arr += (_smooth_noise(rng, n, 5) * rng.uniform(6, 16))[..., None]
    if cardboard:  # fibres and corrugation
        arr += (
            rng.standard_normal((n, 1, 1), dtype=np.float32) * 5
            + rng.standard_normal((n, n, 1), dtype=np.float32) * 3
        )
        arr += (np.sin(np.arange(n, dtype=np.float32) / rng.uniform(2.0, 4.0)) * 3)[None, :, None]
    else:  # moulded ribs
        arr += (np.sin(np.arange(n, dtype=np.float32) * 2 * math.pi / rng.uniform(14, 30)) * 4)[
            None, :, None
        ]
    m = [int(n * rng.uniform(0.07, 0.16)) for _ in range(4)]  # left, top, right, bottom wall widths
    floor = (m[0], m[1], n - m[2], n - m[3])
    walls = [
        [(0, 0), (floor[0], floor[1]), (floor[0], floor[3]), (0, n)],
        [(0, 0), (n, 0), (floor[2], floor[1]), (floor[0], floor[1])],
        [(n, 0), (n, n), (floor[2], floor[3]), (floor[2], floor[1])],
        [(0, n), (floor[0], floor[3]), (floor[2], floor[3]), (n, n)],
    ]
    index = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(index)
    for k, poly in enumerate(walls, start=1):
        draw.polygon(poly, fill=k)
    shades = np.concatenate([[1.0], rng.uniform(0.7, 1.2, 4)]).astype(np.float32)
    arr *= shades[np.asarray(index)][..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").resize(
        (full, full), Image.Resampling.BILINEAR
    )
    floor = (floor[0] * SS, floor[1] * SS, floor[2] * SS, floor[3] * SS)
    ImageDraw.Draw(img).rectangle(floor, outline=_shade(base, 0.55), width=SS * 2)
    return img, floor, base


def _food_background(rng: np.random.Generator, n: int) -> Image.Image:
    full, n = n, n // SS
    kind = ["wood", "cloth", "plain", "tray", "tiles"][int(rng.integers(0, 5))]
    arr = np.empty((n, n, 3), np.float32)
    if kind == "wood":
        base = _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.8))
        warp = _smooth_noise(rng, n, 4) * rng.uniform(4, 10)
        x = np.arange(n, dtype=np.float32)[None, :] + warp
        grain = 0.9 + 0.1 * np.sin(x / rng.uniform(3, 7))
        arr[:] = np.asarray(base, np.float32)
        arr *= grain[..., None]
        if rng.random() < 0.5:
            arr = arr.transpose(1, 0, 2).copy()
    elif kind == "cloth":
        c1 = _hsv(rng.uniform(0, 1), rng.uniform(0.5, 0.8), rng.uniform(0.55, 0.85))
        cell = int(n / rng.uniform(5, 9))
        yy, xx = np.mgrid[0:n, 0:n]
        checks = ((yy // cell) + (xx // cell)) % 2 == 0
        arr[:] = (235, 232, 225)
        arr[checks] = c1
    elif kind == "tiles":
        arr[:] = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.7, 0.95))
        step = int(n / rng.uniform(3, 6))
        arr[::step, :] *= 0.6
        arr[:, ::step] *= 0.6
    else:
        arr[:] = _hsv(rng.uniform(0, 1), rng.uniform(0.05, 0.5), rng.uniform(0.35, 0.9))
    arr += (_smooth_noise(rng, n, 4) * 10)[..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if kind == "tray":
        tray = _hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.6))
        m = int(n * rng.uniform(0.02, 0.06))
        ImageDraw.Draw(img).rounded_rectangle(
            [m, m, n - m, n - m], radius=n // 10, fill=tray, outline=_shade(tray, 0.7), width=2
        )
    return img.resize((full, full), Image.Resampling.BILINEAR)


# -- bin items ----------------------------------------------------------------------------
SHAPES = ("box", "ellipse", "bottle", "polygon", "package")
_NAMES = {
    "box": ("Cardboard Gift Box", "USB Charger Kit", "Card Game", "Phone Case Box"),
    "ellipse": ("Round Tin of Mints", "Yarn Ball", "Pet Ball Toy", "Lip Balm Tin"),
    "bottle": (
        "Vitamin D3 Softgels, 120 Count",
        "Shampoo 12 Fl Oz",
        "Water Bottle 500 ml",
        "Hand Soap Refill",
    ),
    "polygon": ("Hex Key Set", "Star Cookie Cutter", "Geometric Coaster", "Guitar Picks"),
    "package": (
        "Padded Mailer Envelope",
        "Coffee Beans 12 oz",
        "Athletic Socks, 6 Pairs",
        "Zip Bag of Clips",
    ),
}
_ASPECT = {
    "box": (0.6, 1.6),
    "ellipse": (0.6, 1.4),
    "bottle": (0.38, 0.5),
    "polygon": (0.8, 1.2),
    "package": (0.5, 0.9),
}


@dataclass(frozen=True)
class _Product:
    asin: str
    name: str
    shape: str
    colour: RGB
    accent: RGB
    aspect: float
    scale: float
    dims: tuple[float, float, float, float]  # height, length, width (in), weight (lb)


@lru_cache(maxsize=4)
def _catalogue(seed: int, n: int = 48) -> list[_Product]:
    rng = np.random.default_rng([seed, 99])
    out = []
    chars = np.array(list(string.ascii_uppercase + string.digits))
    for i in range(n):
        shape = SHAPES[i % len(SHAPES)]
        colour = _hsv(rng.uniform(0, 1), rng.uniform(0.35, 0.95), rng.uniform(0.5, 1.0))
        accent = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.6), rng.uniform(0.8, 1.0))
        pool = _NAMES[shape]
        name = pool[int(rng.integers(0, len(pool)))]
        asin = "B0" + "".join(rng.choice(chars, 8))
        dims = tuple(round(float(x), 2) for x in rng.uniform(0.5, 9.0, 3)) + (
            round(float(rng.uniform(0.05, 3.0)), 2),
        )
        out.append(
            _Product(
                asin,
                name,
                shape,
                colour,
                accent,
                float(rng.uniform(*_ASPECT[shape])),
                float(rng.uniform(0.85, 1.15)),
                (dims[0], dims[1], dims[2], dims[3]),
            )
        )
    return out


def _item_sprite(rng: np.random.Generator, p: _Product, w: int, h: int) -> Image.Image:
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    c, dark, light = p.colour, _shade(p.colour, 0.6), _shade(p.colour, 1.35)
    edge = max(1, min(w, h) // 20)
    if p.shape == "box":
        d.rectangle([0, 0, w - 1, h - 1], fill=c, outline=dark, width=edge)
        t = max(2, min(w, h) // 6)
        if w >= h:
            d.rectangle([0, h // 2 - t // 2, w - 1, h // 2 + t // 2], fill=_shade(p.accent, 0.9))
        else:
            d.rectangle([w // 2 - t // 2, 0, w // 2 + t // 2, h - 1], fill=_shade(p.accent, 0.9))
        d.rectangle([w * 0.1, h * 0.1, w * 0.35, h * 0.3], fill=(240, 240, 235))
    elif p.shape == "ellipse":
        d.ellipse([0, 0, w - 1, h - 1], fill=c, outline=dark, width=edge)
        d.ellipse([w * 0.2, h * 0.15, w * 0.5, h * 0.42], fill=_rgba(light, 170))
    elif p.shape == "bottle":
        top, neck = int(h * 0.32), w * 0.2
        d.rounded_rectangle(
            [0, top, w - 1, h - 1], radius=max(1, w // 4), fill=c, outline=dark, width=edge
        )
        d.polygon(
            [
                (0, top + w // 4),
                (w / 2 - neck, h * 0.15),
                (w / 2 + neck, h * 0.15),
                (w - 1, top + w // 4),
            ],
            fill=c,
        )
        d.rectangle(
            [w / 2 - neck, 0, w / 2 + neck, h * 0.16], fill=p.accent, outline=_shade(p.accent, 0.6)
        )
        d.rectangle([1, h * 0.52, w - 2, h * 0.78], fill=_shade(p.accent, 1.0))
    elif p.shape == "polygon":
        k = 5 + int(rng.integers(0, 3))
        ang = (
            np.sort(rng.uniform(0, 2 * math.pi, k)) * 0.3
            + np.linspace(0, 2 * math.pi, k, endpoint=False) * 0.7
        )
        rad = rng.uniform(0.75, 1.0, k)
        pts = [
            (w / 2 + (w / 2 - 1) * r * math.cos(a), h / 2 + (h / 2 - 1) * r * math.sin(a))
            for a, r in zip(ang, rad, strict=True)
        ]
        d.polygon(pts, fill=c, outline=dark, width=edge)
    else:  # soft package
        d.rounded_rectangle(
            [0, 0, w - 1, h - 1], radius=max(2, min(w, h) // 3), fill=c, outline=dark, width=edge
        )
        for _ in range(int(rng.integers(3, 6))):
            x0, y0 = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
            d.line(
                [x0, y0, x0 + rng.uniform(-0.2, 0.2) * w, y0 + rng.uniform(-0.2, 0.2) * h],
                fill=_shade(c, 0.75),
                width=max(1, edge),
            )
        d.line([w * 0.1, h * 0.12, w * 0.9, h * 0.12], fill=light, width=max(1, edge))
    arr = np.asarray(im).astype(np.float32)
    ramp = np.linspace(1.1, 0.85, w, dtype=np.float32)[None, :, None]
    arr[..., :3] *= ramp
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")


_SHADOW_LUT = [a * 45 // 100 for a in range(256)]
_BOX_LUT = [255 if a > 96 else 0 for a in range(256)]


def _paste_with_shadow(
    scene: Image.Image, spr: Image.Image, x: int, y: int, shadow: tuple[int, int]
) -> None:
    pad = 4 * SS
    alpha = spr.getchannel("A")
    sh = Image.new("L", (spr.width + 2 * pad, spr.height + 2 * pad), 0)
    sh.paste(alpha, (pad, pad))
    sh = sh.filter(ImageFilter.GaussianBlur(2 * SS)).point(_SHADOW_LUT)
    x0, y0 = x - pad + shadow[0], y - pad + shadow[1]
    scene.paste((0, 0, 0), (x0, y0, x0 + sh.width, y0 + sh.height), sh)
    scene.paste(spr, (x, y), spr)


def _place(
    rng: np.random.Generator,
    region: tuple[int, int, int, int],
    sizes: list[tuple[int, int]],
    overlap: float,
) -> list[tuple[int, int]] | None:
    """Top-left corners inside ``region`` keeping centres apart (``overlap`` < 1 lets items touch)."""
    x0, y0, x1, y1 = region
    placed: list[tuple[float, float, float]] = []
    out = []
    for w, h in sizes:
        r = 0.5 * math.hypot(w, h) * 0.8
        for _ in range(80):
            if x1 - x0 - w <= 0 or y1 - y0 - h <= 0:
                return None
            x = int(rng.integers(x0, x1 - w))
            y = int(rng.integers(y0, y1 - h))
            cx, cy = x + w / 2, y + h / 2
            if all(math.hypot(cx - px, cy - py) >= overlap * (r + pr) for px, py, pr in placed):
                placed.append((cx, cy, r))
                out.append((x, y))
                break
        else:
            return None
    return out


def _bin_items(
    rng: np.random.Generator, catalogue: list[_Product], count: int
) -> list[tuple[_Product, int]]:
    kinds = int(rng.integers(1, count + 1))
    picks = rng.choice(len(catalogue), size=kinds, replace=False)
    cuts = (
        sorted(rng.choice(np.arange(1, count), size=kinds - 1, replace=False).tolist())
        if kinds > 1
        else []
    )
    qty = [b - a for a, b in zip([0, *cuts], [*cuts, count], strict=True)]
    return [(catalogue[int(i)], q) for i, q in zip(picks, qty, strict=True)]


def render_bin(
    seed: int, index: int, count: int, size: int, catalogue: list[_Product]
) -> tuple[Image.Image, list[tuple[_Product, int]]]:
    """One bin photo with ``count`` items; returns (image, [(product, quantity), ...])."""
    rng = np.random.default_rng([seed, 1, index])
    n = size * SS
    scene, floor, _ = _bin_background(rng, n)
    items = _bin_items(rng, catalogue, count)
    fw, fh = floor[2] - floor[0], floor[3] - floor[1]
    base = math.sqrt(fw * fh / max(count, 2)) * rng.uniform(0.55, 0.75)
    sprites: list[Image.Image] = []
    for product, q in items:
        for _ in range(q):
            d = base * product.scale * rng.uniform(0.9, 1.1)
            a = product.aspect
            w, h = (d, d / a) if a >= 1 else (d * a, d)
            spr = _item_sprite(rng, product, max(4, int(w)), max(4, int(h)))
            sprites.append(
                spr.rotate(
                    float(rng.uniform(0, 360)), resample=Image.Resampling.BICUBIC, expand=True
                )
            )
    order = rng.permutation(len(sprites))
    sprites = [sprites[i] for i in order]
    shadow = (int(rng.integers(1, 4)) * SS, int(rng.integers(1, 4)) * SS)
    for shrink in (1.0, 0.85, 0.7, 0.55, 0.4):
        scaled = (
            sprites
            if shrink == 1.0
            else [
                s.resize(
                    (max(4, int(s.width * shrink)), max(4, int(s.height * shrink))),
                    Image.Resampling.BICUBIC,
                )
                for s in sprites
            ]
        )
        spots = _place(rng, floor, [s.size for s in scaled], overlap=0.8)
        if spots is not None:
            break
    else:  # pragma: no cover - the smallest scale always fits
        raise RuntimeError("could not place bin items")
    for spr, (x, y) in zip(scaled, spots, strict=True):
        _paste_with_shadow(scene, spr, x, y, shadow)
    if rng.random() < 0.5:  # elastic bands across the bin front
        pen = ImageDraw.Draw(scene)
        band = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.6, 0.9))
        for _ in range(int(rng.integers(1, 3))):
            yb = rng.uniform(0.2, 0.8) * n
            pen.line(
                [0, yb, n, yb + rng.uniform(-0.08, 0.08) * n],
                fill=band,
                width=max(1, int(SS * 1.5)),
            )
    return _finish(rng, scene, size), items


# -- food items ---------------------------------------------------------------------------
def _burger(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    bun = _hsv(rng.uniform(0.06, 0.1), rng.uniform(0.6, 0.8), rng.uniform(0.75, 0.95))
    d.rounded_rectangle(
        [w * 0.06, h * 0.78, w * 0.94, h - 1], radius=max(1, int(h * 0.08)), fill=_shade(bun, 0.9)
    )
    d.rounded_rectangle(
        [w * 0.02, h * 0.6, w * 0.98, h * 0.8],
        radius=max(1, int(h * 0.08)),
        fill=_shade((95, 52, 30), rng.uniform(0.8, 1.2)),
    )
    if rng.random() < 0.6:
        d.polygon(
            [
                (w * 0.05, h * 0.58),
                (w * 0.95, h * 0.58),
                (w * 0.8, h * 0.7),
                (w * 0.6, h * 0.63),
                (w * 0.35, h * 0.72),
                (w * 0.15, h * 0.63),
            ],
            fill=(245, 190, 40),
        )
    green = _hsv(rng.uniform(0.25, 0.33), 0.75, rng.uniform(0.55, 0.8))
    for i in range(8):
        cx = w * (0.05 + 0.9 * i / 7)
        d.ellipse([cx - w * 0.08, h * 0.5, cx + w * 0.08, h * 0.62], fill=green)
    d.chord([0, 0, w - 1, h * 1.1], 180, 360, fill=bun)
    for _ in range(int(rng.integers(5, 12))):
        x, y = rng.uniform(0.2, 0.8) * w, rng.uniform(0.12, 0.4) * h
        d.ellipse([x, y, x + max(1, w * 0.04), y + max(1, h * 0.025)], fill=(250, 240, 200))
    return im


def _fries(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(8, 13))):
        x, top, lean = (
            rng.uniform(0.18, 0.82) * w,
            rng.uniform(0.0, 0.25) * h,
            rng.uniform(-0.06, 0.06) * w,
        )
        sw = max(2.0, w * 0.07)
        col = _hsv(rng.uniform(0.11, 0.14), rng.uniform(0.6, 0.85), rng.uniform(0.85, 1.0))
        d.polygon(
            [(x + lean, top), (x + lean + sw, top), (x + sw, h * 0.6), (x, h * 0.6)],
            fill=col,
            outline=_shade(col, 0.75),
        )
    box = _hsv(
        [0.0, 0.0, 0.6, 0.12][int(rng.integers(0, 4))], rng.uniform(0.7, 0.9), rng.uniform(0.7, 0.9)
    )
    d.polygon(
        [(0, h * 0.35), (w - 1, h * 0.35), (w * 0.82, h - 1), (w * 0.18, h - 1)],
        fill=box,
        outline=_shade(box, 0.7),
    )
    d.chord([w * 0.3, h * 0.5, w * 0.7, h * 0.8], 0, 180, fill=(250, 215, 60))
    return im


def _drink(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    cup = [(240, 240, 235), _hsv(0, 0.8, 0.85), _hsv(0.6, 0.7, 0.8), _hsv(0.33, 0.6, 0.7)][
        int(rng.integers(0, 4))
    ]
    straw = [_hsv(0, 0.8, 0.9), (250, 250, 250), _hsv(0.15, 0.8, 0.95)][int(rng.integers(0, 3))]
    d.polygon(
        [(w * 0.55, h * 0.14), (w * 0.55 + w * 0.1, h * 0.14), (w * 0.78, 0), (w * 0.7, 0)],
        fill=straw,
    )
    d.polygon(
        [(w * 0.05, h * 0.18), (w * 0.95, h * 0.18), (w * 0.8, h - 1), (w * 0.2, h - 1)],
        fill=cup,
        outline=_shade(cup, 0.7),
    )
    band = _hsv(rng.uniform(0, 1), 0.8, 0.8)
    d.polygon(
        [(w * 0.1, h * 0.45), (w * 0.9, h * 0.45), (w * 0.86, h * 0.62), (w * 0.14, h * 0.62)],
        fill=band,
    )
    d.rounded_rectangle(
        [0, h * 0.1, w - 1, h * 0.2],
        radius=max(1, int(h * 0.04)),
        fill=(225, 225, 225),
        outline=(160, 160, 160),
    )
    return im


_FOOD_DRAW = {
    "burger": (_burger, (1.15, 1.4)),
    "fries": (_fries, (0.68, 0.8)),
    "drink": (_drink, (0.55, 0.65)),
}


def render_food(seed: int, index: int, size: int) -> tuple[Image.Image, list[list[int]], list[int]]:
    """One food photo; returns (image, boxes xyxy in pixels, class indices into FOOD)."""
    rng = np.random.default_rng([seed, 2, index])
    n = size * SS
    scene = _food_background(rng, n)
    k = 0 if rng.random() < 0.1 else int(rng.integers(1, 5))
    labels = [int(x) for x in rng.integers(0, len(FOOD), k)]
    sprites = []
    for lab in labels:
        draw, (lo, hi) = _FOOD_DRAW[FOOD[lab]]
        aspect = rng.uniform(lo, hi)
        hgt = n * rng.uniform(0.22, 0.42) * (0.8 if aspect > 1 else 1.0)
        spr = draw(rng, max(6, int(hgt * aspect)), max(6, int(hgt)))
        sprites.append(
            spr.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BICUBIC, expand=True)
        )
    margin = 3 * SS
    spots = None
    for shrink in (1.0, 0.8, 0.6, 0.45):
        scaled = (
            sprites
            if shrink == 1.0
            else [
                s.resize(
                    (max(6, int(s.width * shrink)), max(6, int(s.height * shrink))),
                    Image.Resampling.BICUBIC,
                )
                for s in sprites
            ]
        )
        spots = _place(
            rng, (margin, margin, n - margin, n - margin), [s.size for s in scaled], overlap=1.0
        )
        if spots is not None:
            break
    if spots is None:  # pragma: no cover
        raise RuntimeError("could not place food items")
    shadow = (int(rng.integers(-3, 4)) * SS, int(rng.integers(1, 4)) * SS)
    boxes = []
    for spr, (x, y) in zip(scaled, spots, strict=True):
        _paste_with_shadow(scene, spr, x, y, shadow)
        bx = spr.getchannel("A").point(_BOX_LUT).getbbox() or (0, 0, spr.width, spr.height)
        boxes.append(
            [(x + bx[0]) // SS, (y + bx[1]) // SS, -(-(x + bx[2]) // SS), -(-(y + bx[3]) // SS)]
        )
    return _finish(rng, scene, size), boxes, labels


# -- writing ------------------------------------------------------------------------------
def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _amazon_meta(fname: str, items: list[tuple[_Product, int]]) -> dict[str, Any]:
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


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DatasetError(
                f"{out}: exists and is not a demo-data folder (no {MARKER}); choose an empty or new --out"
            )
        for sub in ("counting", "detection", "raw/amazon-bin", "raw/voc"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, {"generator": "cvpipe demo-data", "complete": False})


def _bin_job(job: tuple[int, int, int, int, int]) -> tuple[bytes, str, list[dict[str, Any]]]:
    seed, index, count, size, quality = job
    img, items = render_bin(seed, index, count, size, _catalogue(seed))
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


def _write_counting(out: Path, cfg: DemoConfig, bar: Bar, workers: int) -> int:
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
    Dataset(out / "counting", info, records).save()
    split_dataset(out / "counting", SplitConfig(ratios="70/20/10", seed=cfg.seed))
    return len(records)


def _write_detection(out: Path, cfg: DemoConfig, bar: Bar, total: int, workers: int) -> int:
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
    Dataset(out / "detection", info, records).save()
    split_dataset(out / "detection", SplitConfig(ratios="70/20/10", seed=cfg.seed))
    return len(records)


def generate_demo(out: str | Path, cfg: DemoConfig) -> DemoResult:
    """Write the demo datasets into ``out`` (see the module docstring for the layout).

    Image and annotation files are written directly (not one fsync each, which would
    dominate the run time); ``demo.json`` says ``"complete": true`` only once all are
    written, and a rerun into the same folder replaces an incomplete one.

    Args:
        out: output folder; must be new, empty, or an earlier demo-data output (replaced).
        cfg: resolved :class:`DemoConfig`.

    Returns:
        :class:`DemoResult` with the paths written.

    Raises:
        DatasetError: ``out`` holds other files.
    """
    out = Path(out)
    _prepare(out)
    n_det = (
        cfg.detect_images if cfg.detect_images is not None else max(6, round(1.875 * cfg.per_class))
    )
    total = 5 * cfg.per_class + n_det
    workers = (
        cfg.workers
        if cfg.workers is not None
        else (min(8, os.cpu_count() or 1) if total >= 200 else 1)
    )
    with Bar(total=total, desc="demo-data", unit="img") as bar:
        n_count = _write_counting(out, cfg, bar, workers)
        n_food = _write_detection(out, cfg, bar, n_det, workers)
    settings = config_to_dict(cfg)
    settings.pop("workers")
    write_json(
        out / MARKER,
        {
            "generator": "cvpipe demo-data",
            "complete": True,
            "config": settings,
            "counting_images": n_count,
            "detection_images": n_food,
        },
    )
    log.debug("demo data written to %s", out)
    return DemoResult(
        out,
        out / "counting",
        out / "detection",
        out / "raw" / "amazon-bin",
        out / "raw" / "voc",
        n_count,
        n_food,
    )


def generate(out: str | Path, **options: Any) -> DemoResult:
    """``cvpipe demo-data``: generate the synthetic counting and detection sets offline.

    Args:
        out: output folder (new, empty, or an earlier demo-data output).
        **options: fields of :class:`DemoConfig` (``seed``, ``size``, ``per_class``,
            ``detect_images``, ``quality``, ``workers``).

    Returns:
        :class:`DemoResult`.

    Raises:
        ConfigError: unknown or invalid option.
        DatasetError: ``out`` holds other files.

    Example:
        >>> generate("demo/data", seed=0)  # doctest: +SKIP
    """
    return generate_demo(out, load_config(DemoConfig, values=options))
