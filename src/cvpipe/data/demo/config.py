"""Options and result of ``cvpipe demo-data``.

Example:
    >>> DemoConfig(per_class=20, size=96).detect_images is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from cvpipe.config import Config

MARKER = "demo.json"  # written first (complete: false), rewritten last (complete: true)


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
