"""Bin scenes of the demo counting set: a tote seen from above holding 1-5 catalogue items.

The tote is plastic or cardboard (gradients, grain, ribs or fibres, four shaded walls);
items come from a small seeded product catalogue (boxes, round tins, bottles, polygons,
soft packages) in varied colours, sizes and rotations, with soft shadows, partial
overlap and elastic bands across some bins. Items overlap only partly, so the count
stays visible. The catalogue also gives the Amazon-bin metadata (ASIN, name, dimensions).

Example:
    >>> img, items = render_bin(0, 1, 3, 96, product_catalogue(0))  # doctest: +SKIP
    >>> sum(q for _, q in items)  # doctest: +SKIP
    3
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from cvpipe.data.demo.drawing import (
    RGB,
    SS,
    finish,
    fit_sprites,
    hsv,
    paste_with_shadow,
    rgba,
    shade,
    smooth_noise,
)

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
class Product:
    asin: str
    name: str
    shape: str
    colour: RGB
    accent: RGB
    aspect: float
    scale: float
    dims: tuple[float, float, float, float]  # height, length, width (in), weight (lb)


@lru_cache(maxsize=4)
def product_catalogue(seed: int, n: int = 48) -> list[Product]:
    rng = np.random.default_rng([seed, 99])
    out = []
    chars = np.array(list(string.ascii_uppercase + string.digits))
    for i in range(n):
        shape = SHAPES[i % len(SHAPES)]
        colour = hsv(rng.uniform(0, 1), rng.uniform(0.35, 0.95), rng.uniform(0.5, 1.0))
        accent = hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.6), rng.uniform(0.8, 1.0))
        pool = _NAMES[shape]
        name = pool[int(rng.integers(0, len(pool)))]
        asin = "B0" + "".join(rng.choice(chars, 8))
        dims = tuple(round(float(x), 2) for x in rng.uniform(0.5, 9.0, 3)) + (
            round(float(rng.uniform(0.05, 3.0)), 2),
        )
        out.append(
            Product(
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


def _bin_background(
    rng: np.random.Generator, n: int
) -> tuple[Image.Image, tuple[int, int, int, int], RGB]:
    """A tote seen from above: floor, four shaded walls, texture. Returns (image, floor box, floor colour).

    The texture is drawn at output resolution and scaled up (only item edges need supersampling).
    """
    full, n = n, n // SS
    cardboard = rng.random() < 0.35
    if cardboard:
        base = hsv(rng.uniform(0.06, 0.1), rng.uniform(0.35, 0.55), rng.uniform(0.55, 0.75))
    else:
        h = [0.6, 0.0, 0.13, 0.33, 0.58, 0.0][int(rng.integers(0, 6))]
        s = 0.0 if rng.random() < 0.3 else rng.uniform(0.4, 0.8)
        base = hsv(h + rng.uniform(-0.02, 0.02), s, rng.uniform(0.25, 0.75))
    arr = np.empty((n, n, 3), np.float32)
    arr[:] = base
    arr += (smooth_noise(rng, n, 5) * rng.uniform(6, 16))[..., None]
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
    ImageDraw.Draw(img).rectangle(floor, outline=shade(base, 0.55), width=SS * 2)
    return img, floor, base


def _item_sprite(rng: np.random.Generator, p: Product, w: int, h: int) -> Image.Image:
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    c, dark, light = p.colour, shade(p.colour, 0.6), shade(p.colour, 1.35)
    edge = max(1, min(w, h) // 20)
    if p.shape == "box":
        d.rectangle([0, 0, w - 1, h - 1], fill=c, outline=dark, width=edge)
        t = max(2, min(w, h) // 6)
        if w >= h:
            d.rectangle([0, h // 2 - t // 2, w - 1, h // 2 + t // 2], fill=shade(p.accent, 0.9))
        else:
            d.rectangle([w // 2 - t // 2, 0, w // 2 + t // 2, h - 1], fill=shade(p.accent, 0.9))
        d.rectangle([w * 0.1, h * 0.1, w * 0.35, h * 0.3], fill=(240, 240, 235))
    elif p.shape == "ellipse":
        d.ellipse([0, 0, w - 1, h - 1], fill=c, outline=dark, width=edge)
        d.ellipse([w * 0.2, h * 0.15, w * 0.5, h * 0.42], fill=rgba(light, 170))
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
            [w / 2 - neck, 0, w / 2 + neck, h * 0.16], fill=p.accent, outline=shade(p.accent, 0.6)
        )
        d.rectangle([1, h * 0.52, w - 2, h * 0.78], fill=shade(p.accent, 1.0))
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
                fill=shade(c, 0.75),
                width=max(1, edge),
            )
        d.line([w * 0.1, h * 0.12, w * 0.9, h * 0.12], fill=light, width=max(1, edge))
    arr = np.asarray(im).astype(np.float32)
    ramp = np.linspace(1.1, 0.85, w, dtype=np.float32)[None, :, None]
    arr[..., :3] *= ramp
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGBA")


def _bin_items(
    rng: np.random.Generator, catalogue: list[Product], count: int
) -> list[tuple[Product, int]]:
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
    seed: int, index: int, count: int, size: int, catalogue: list[Product]
) -> tuple[Image.Image, list[tuple[Product, int]]]:
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
    fitted = fit_sprites(rng, floor, sprites, (1.0, 0.85, 0.7, 0.55, 0.4), min_side=4, overlap=0.8)
    if fitted is None:  # pragma: no cover - the smallest scale always fits
        raise RuntimeError("could not place bin items")
    scaled, spots = fitted
    for spr, (x, y) in zip(scaled, spots, strict=True):
        paste_with_shadow(scene, spr, x, y, shadow)
    if rng.random() < 0.5:  # elastic bands across the bin front
        pen = ImageDraw.Draw(scene)
        band = hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.6, 0.9))
        for _ in range(int(rng.integers(1, 3))):
            yb = rng.uniform(0.2, 0.8) * n
            pen.line(
                [0, yb, n, yb + rng.uniform(-0.08, 0.08) * n],
                fill=band,
                width=max(1, int(SS * 1.5)),
            )
    return finish(rng, scene, size), items
