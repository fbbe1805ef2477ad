"""The ``cvpipe demo-data`` entry points: :func:`generate` and :func:`generate_demo`.

Example:
    >>> res = generate("demo/data", per_class=20, size=96)  # doctest: +SKIP
    >>> res.counting_images  # doctest: +SKIP
    100
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from cvpipe.config import config_to_dict, load_config
from cvpipe.data.demo.config import MARKER, DemoConfig, DemoResult
from cvpipe.data.demo.writers import write_counting, write_detection
from cvpipe.errors import DatasetError
from cvpipe.io import write_json
from cvpipe.progress import Bar

log = logging.getLogger(__name__)


def _prepare(out: Path) -> None:
    """Make ``out`` ready: new, empty, or an earlier demo-data output (its sets removed)."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise DatasetError(
                f"{out}: exists and is not a demo-data folder (no {MARKER}); choose an empty or new --out"
            )
        for sub in ("counting", "detection", "raw/amazon-bin", "raw/voc"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MARKER, {"generator": "cvpipe demo-data", "complete": False})


def generate_demo(out: str | Path, cfg: DemoConfig) -> DemoResult:
    """Write the demo datasets into ``out`` (layout in :mod:`cvpipe.data.demo`).

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
        n_count = write_counting(out, cfg, bar, workers)
        n_food = write_detection(out, cfg, bar, n_det, workers)
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
