"""cvpipe's weights store: adding a checked file, and verifying any weights source.

:func:`add_weights` (``cvpipe weights add NAME FILE``) loads a file strictly into a fresh
backbone of the model before copying (or linking) it into ``$CVPIPE_HOME/weights`` and
its index; :func:`verify_source` (``cvpipe weights verify``) checks a source's checksum,
strict load and a forward pass on a synthetic image.

Example:
    >>> entry, report = add_weights("resnet18", "resnet18-f37072fd.pth")  # doctest: +SKIP
    >>> report.mapping  # doctest: +SKIP
    'by name'
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cvpipe.errors import CheckpointError, WeightsNotFoundError
from cvpipe.io import write_json
from cvpipe.models.backbones import build_backbone, model_meta
from cvpipe.models.weight_files import (
    INDEX_NAME,
    file_sha256,
    read_index,
    read_state_dict,
    store_dir,
)
from cvpipe.models.weight_sources import WeightsSource
from cvpipe.models.weights import LoadReport, load_backbone_weights

log = logging.getLogger(__name__)


def check_file(name: str, path: str | Path, in_order: bool = False) -> LoadReport:
    """Load ``path`` into a freshly built backbone of ``name`` strictly (nothing stored).

    Raises:
        UnknownNameError, WeightsNotFoundError, CheckpointError: see :func:`load_backbone_weights`.
    """
    meta = model_meta(name)
    backbone, _ = build_backbone(meta)
    sd = read_state_dict(path)
    return load_backbone_weights(
        backbone.module, sd, backbone, model=name, source=str(path), in_order=in_order
    )


def add_weights(
    name: str, path: str | Path, link: bool = False
) -> tuple[dict[str, Any], LoadReport]:
    """Verify ``path`` loads strictly into ``name``'s backbone, then copy (or link) it into the store.

    Args:
        name: model name.
        path: a weights file (state_dict; .pth/.pt/.bin/.safetensors).
        link: symlink instead of copying.

    Returns:
        The index entry written (file, sha256, size, added, origin, mapping, linked) and
        the strict load report.

    Raises:
        CheckpointError: the file does not fit the model (nothing is stored).
    """
    src = Path(path).expanduser().resolve()
    report = check_file(name, src)
    digest = file_sha256(src)
    directory = store_dir()
    directory.mkdir(parents=True, exist_ok=True)
    safe = name.replace("/", "--")
    dest = directory / f"{safe}-{digest[:12]}{src.suffix}"
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    if link:
        dest.symlink_to(src)
    else:
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    index = read_index()
    old = index["models"].get(name)
    entry = {
        "file": dest.name,
        "sha256": digest,
        "size": src.stat().st_size,
        "added": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "origin": str(src),
        "mapping": report.mapping,
        "linked": link,
    }
    index["models"][name] = entry
    write_json(directory / INDEX_NAME, index)
    if old and old.get("file") != dest.name:
        (directory / old["file"]).unlink(missing_ok=True)
    log.info("%s: stored %s as %s (sha256 %s)", name, src, dest, digest[:12])
    return entry, report


@dataclass
class VerifyResult:
    """Outcome of verifying one weights source."""

    model: str
    source: WeightsSource
    ok: bool
    message: str
    report: LoadReport | None = None


def synthetic_image(size: int) -> Any:
    """A deterministic RGB test card (gradients and a square) as a PIL image."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    arr = np.stack(
        [
            x * 255 // max(size - 1, 1),
            y * 255 // max(size - 1, 1),
            (x + y) * 127 // max(size - 1, 1),
        ],
        -1,
    )
    arr[size // 4 : size // 2, size // 4 : size // 2] = (230, 40, 40)
    return Image.fromarray(arr.astype("uint8"), "RGB")


def verify_source(name: str, source: WeightsSource) -> VerifyResult:
    """Checksum (store), strict load and a forward pass on a synthetic image (finite output)."""
    meta = model_meta(name)
    try:
        if source.sha256 and file_sha256(source.path) != source.sha256:
            return VerifyResult(
                name, source, False, "sha256 differs from the store index: re-add the file"
            )
        backbone, preprocess = build_backbone(meta)
        sd = read_state_dict(source.path)
        report = load_backbone_weights(
            backbone.module,
            sd,
            backbone,
            model=name,
            source=source.describe(),
            in_order=source.in_order,
        )
        net = backbone.module.eval()
        x = preprocess.eval_transform()(synthetic_image(preprocess.input_size)).unsqueeze(0)
        with torch.no_grad():
            out = net(x)
        if out.shape != (1, backbone.feature_dim) or not torch.isfinite(out).all():
            return VerifyResult(
                name,
                source,
                False,
                f"forward pass gave shape {tuple(out.shape)} / non-finite values",
                report,
            )
    except (CheckpointError, WeightsNotFoundError) as exc:
        return VerifyResult(name, source, False, str(exc))
    msg = f"{report.loaded} tensors ({report.mapping}), forward pass finite"
    if report.dropped:
        msg += f", {len(report.dropped)} classifier tensors dropped"
    if report.expected_missing:
        msg += f", no classifier in file ({len(report.expected_missing)} keys, not needed)"
    return VerifyResult(name, source, True, msg, report)
