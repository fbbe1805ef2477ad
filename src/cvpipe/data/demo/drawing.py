"""Drawing primitives shared by the demo scenes: colours, noise, shadows, placement, finish.

Scenes are drawn at ``SS`` times the output size and reduced once by :func:`finish`,
which also adds a lighting gradient, a colour cast and sensor grain. Every function
takes the image's own ``numpy`` generator, so the output depends only on the seed.

Example:
    >>> shade(hsv(0.0, 1.0, 1.0), 0.5)
    (127, 0, 0)
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageFilter

SS = 2  # supersampling: draw at 2x, downsample once (smooth edges)
RGB = tuple[int, int, int]


def hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def shade(c: RGB, f: float) -> RGB:
    return tuple(int(min(255, max(0, x * f))) for x in c)  # type: ignore[return-value]


def rgba(c: RGB, a: int = 255) -> tuple[int, int, int, int]:
    return c[0], c[1], c[2], a


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1], shape (size, size)."""
    small = rng.normal(0.0, 1.0, (cells, cells)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img, dtype=np.float32) / 1.5, -1.5, 1.5)


def finish(rng: np.random.Generator, scene: Image.Image, out_size: int) -> Image.Image:
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


_SHADOW_LUT = [a * 45 // 100 for a in range(256)]


def paste_with_shadow(
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


def place(
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


def fit_sprites(
    rng: np.random.Generator,
    region: tuple[int, int, int, int],
    sprites: list[Image.Image],
    scales: tuple[float, ...],
    min_side: int,
    overlap: float,
) -> tuple[list[Image.Image], list[tuple[int, int]]] | None:
    """Place ``sprites`` with :func:`place`, shrinking them through ``scales`` until they fit.

    Returns:
        (the sprites at the first scale that fitted, their top-left corners), or None
        when even the last scale does not fit. Shrunk sides are at least ``min_side``.
    """
    for shrink in scales:
        scaled = (
            sprites
            if shrink == 1.0
            else [
                s.resize(
                    (max(min_side, int(s.width * shrink)), max(min_side, int(s.height * shrink))),
                    Image.Resampling.BICUBIC,
                )
                for s in sprites
            ]
        )
        spots = place(rng, region, [s.size for s in scaled], overlap=overlap)
        if spots is not None:
            return scaled, spots
    return None
