"""Food scenes of the demo detection set: burgers, fries and drinks on a table.

Backgrounds are wood, cloth, tiles, a tray or a plain surface; each object is drawn as
an RGBA sprite, rotated slightly and pasted with a soft shadow. Boxes are the exact
pixel extent of each drawn object (alpha above a threshold), in cvpipe's xyxy pixels.

Example:
    >>> img, boxes, labels = render_food(0, 1, 120)  # doctest: +SKIP
    >>> [FOOD[c] for c in labels]  # doctest: +SKIP
    ['fries', 'burger']
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from cvpipe.data.demo.drawing import (
    SS,
    finish,
    fit_sprites,
    hsv,
    paste_with_shadow,
    shade,
    smooth_noise,
)

FOOD = ("burger", "drink", "fries")  # sorted, the order `cvpipe import voc` gives
_BOX_LUT = [255 if a > 96 else 0 for a in range(256)]  # alpha > 96 counts as object


def _food_background(rng: np.random.Generator, n: int) -> Image.Image:
    """A table top of side ``n``: wood, cloth, plain, a tray or tiles (texture drawn at 1/SS)."""
    full, n = n, n // SS
    kind = ["wood", "cloth", "plain", "tray", "tiles"][int(rng.integers(0, 5))]
    arr = np.empty((n, n, 3), np.float32)
    if kind == "wood":
        base = hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.8))
        warp = smooth_noise(rng, n, 4) * rng.uniform(4, 10)
        x = np.arange(n, dtype=np.float32)[None, :] + warp
        grain = 0.9 + 0.1 * np.sin(x / rng.uniform(3, 7))
        arr[:] = np.asarray(base, np.float32)
        arr *= grain[..., None]
        if rng.random() < 0.5:
            arr = arr.transpose(1, 0, 2).copy()
    elif kind == "cloth":
        c1 = hsv(rng.uniform(0, 1), rng.uniform(0.5, 0.8), rng.uniform(0.55, 0.85))
        cell = int(n / rng.uniform(5, 9))
        yy, xx = np.mgrid[0:n, 0:n]
        checks = ((yy // cell) + (xx // cell)) % 2 == 0
        arr[:] = (235, 232, 225)
        arr[checks] = c1
    elif kind == "tiles":
        arr[:] = hsv(rng.uniform(0, 1), rng.uniform(0, 0.2), rng.uniform(0.7, 0.95))
        step = int(n / rng.uniform(3, 6))
        arr[::step, :] *= 0.6
        arr[:, ::step] *= 0.6
    else:
        arr[:] = hsv(rng.uniform(0, 1), rng.uniform(0.05, 0.5), rng.uniform(0.35, 0.9))
    arr += (smooth_noise(rng, n, 4) * 10)[..., None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if kind == "tray":
        tray = hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.6))
        m = int(n * rng.uniform(0.02, 0.06))
        ImageDraw.Draw(img).rounded_rectangle(
            [m, m, n - m, n - m], radius=n // 10, fill=tray, outline=shade(tray, 0.7), width=2
        )
    return img.resize((full, full), Image.Resampling.BILINEAR)


def _burger(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    bun = hsv(rng.uniform(0.06, 0.1), rng.uniform(0.6, 0.8), rng.uniform(0.75, 0.95))
    d.rounded_rectangle(
        [w * 0.06, h * 0.78, w * 0.94, h - 1], radius=max(1, int(h * 0.08)), fill=shade(bun, 0.9)
    )
    d.rounded_rectangle(
        [w * 0.02, h * 0.6, w * 0.98, h * 0.8],
        radius=max(1, int(h * 0.08)),
        fill=shade((95, 52, 30), rng.uniform(0.8, 1.2)),
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
    green = hsv(rng.uniform(0.25, 0.33), 0.75, rng.uniform(0.55, 0.8))
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
        col = hsv(rng.uniform(0.11, 0.14), rng.uniform(0.6, 0.85), rng.uniform(0.85, 1.0))
        d.polygon(
            [(x + lean, top), (x + lean + sw, top), (x + sw, h * 0.6), (x, h * 0.6)],
            fill=col,
            outline=shade(col, 0.75),
        )
    box = hsv(
        [0.0, 0.0, 0.6, 0.12][int(rng.integers(0, 4))], rng.uniform(0.7, 0.9), rng.uniform(0.7, 0.9)
    )
    d.polygon(
        [(0, h * 0.35), (w - 1, h * 0.35), (w * 0.82, h - 1), (w * 0.18, h - 1)],
        fill=box,
        outline=shade(box, 0.7),
    )
    d.chord([w * 0.3, h * 0.5, w * 0.7, h * 0.8], 0, 180, fill=(250, 215, 60))
    return im


def _drink(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    cup = [(240, 240, 235), hsv(0, 0.8, 0.85), hsv(0.6, 0.7, 0.8), hsv(0.33, 0.6, 0.7)][
        int(rng.integers(0, 4))
    ]
    straw = [hsv(0, 0.8, 0.9), (250, 250, 250), hsv(0.15, 0.8, 0.95)][int(rng.integers(0, 3))]
    d.polygon(
        [(w * 0.55, h * 0.14), (w * 0.55 + w * 0.1, h * 0.14), (w * 0.78, 0), (w * 0.7, 0)],
        fill=straw,
    )
    d.polygon(
        [(w * 0.05, h * 0.18), (w * 0.95, h * 0.18), (w * 0.8, h - 1), (w * 0.2, h - 1)],
        fill=cup,
        outline=shade(cup, 0.7),
    )
    band = hsv(rng.uniform(0, 1), 0.8, 0.8)
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
    region = (margin, margin, n - margin, n - margin)
    fitted = fit_sprites(rng, region, sprites, (1.0, 0.8, 0.6, 0.45), min_side=6, overlap=1.0)
    if fitted is None:  # pragma: no cover
        raise RuntimeError("could not place food items")
    scaled, spots = fitted
    shadow = (int(rng.integers(-3, 4)) * SS, int(rng.integers(1, 4)) * SS)
    boxes = []
    for spr, (x, y) in zip(scaled, spots, strict=True):
        paste_with_shadow(scene, spr, x, y, shadow)
        bx = spr.getchannel("A").point(_BOX_LUT).getbbox() or (0, 0, spr.width, spr.height)
        boxes.append(
            [(x + bx[0]) // SS, (y + bx[1]) // SS, -(-(x + bx[2]) // SS), -(-(y + bx[3]) // SS)]
        )
    return finish(rng, scene, size), boxes, labels
