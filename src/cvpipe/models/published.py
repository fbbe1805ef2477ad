"""Where each model's weights are published, and fetching them into the local caches.

The last step of :func:`cvpipe.models.weights.resolve` (after every offline source):

- torchvision classifiers: the ``DEFAULT`` entry of torchvision's weight enum (URL; the
  file name carries the sha256 prefix), downloaded to torch hub's checkpoint cache
  (``$TORCH_HOME/hub/checkpoints``) under its own name, where torchvision, timm and
  cvpipe's offline resolution all find it next time;
- timm classifiers: ``model.safetensors`` of the model's Hugging Face hub id (sha256
  from the hub's ``X-Linked-Etag``), stored in cvpipe's store and its index;
- torchvision detectors: their ``COCO_V1`` weights (``--weights coco``), to the torch cache.

torchvision's own downloader is never called: :mod:`cvpipe.models.download` does the
transfer (timeouts, resume, hash check, mirror, off switch).

Example:
    >>> published_classifier("resnet50").filename  # doctest: +SKIP
    'resnet50-11ad3fa6.pth'
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path

from cvpipe.errors import DownloadError
from cvpipe.io import write_json
from cvpipe.models.backbones import model_meta
from cvpipe.models.download import RemoteFile, fetch, hash_from_name, offline_reason
from cvpipe.models.weight_files import INDEX_NAME, read_index, store_dir, timm_cfg, torch_cache_dir

log = logging.getLogger(__name__)

HF_URL = "https://huggingface.co"


@dataclass(frozen=True)
class Published:
    """A model's published weights file and where a download of it is kept."""

    model: str
    remote: RemoteFile
    dest: Path
    kind: str  # torch-cache | store
    what: str  # "ImageNet" | "COCO"


def torchvision_urls(arch: str, tag: str | None = None) -> list[str]:
    """URLs in torchvision's weight enum of ``arch``: entry ``tag`` (e.g. ``COCO_V1``), or
    every entry with ``DEFAULT`` first; [] when torchvision publishes none."""
    from torchvision import models

    try:
        enum = models.get_model_weights(arch)
    except ValueError:
        return []
    if tag is not None:
        entry = getattr(enum, tag, None)
        return [entry.url] if entry is not None else []
    default = getattr(enum, "DEFAULT", None)
    ordered = [default] + [w for w in enum if w is not default] if default else list(enum)
    return [w.url for w in ordered]


def _torch_file(model: str, url: str, what: str) -> Published:
    name = Path(url).name
    remote = RemoteFile(url, name, sha256=hash_from_name(name), mirror_path=name)
    return Published(model, remote, torch_cache_dir() / name, "torch-cache", what)


def published_classifier(name: str) -> Published | None:
    """The published ImageNet weights of classifier ``name`` (None: none exist, e.g. custom CNNs).

    Raises:
        UnknownNameError: unknown model name.
    """
    meta = model_meta(name)
    if meta.family == "torchvision":
        urls = torchvision_urls(meta.source)
        return _torch_file(name, urls[0], "ImageNet") if urls else None
    if meta.family != "timm":
        return None
    cfg = timm_cfg(meta.source)
    hub = str(cfg.get("hf_hub_id") or "")
    if hub:
        fname = str(cfg.get("hf_hub_filename") or "model.safetensors")
        remote = RemoteFile(f"{HF_URL}/{hub}/resolve/main/{fname}", fname, None, f"{hub}/{fname}")
        dest = store_dir() / f"{hub.replace('/', '--')}--{fname}"
        return Published(name, remote, dest, "store", "ImageNet")
    url = str(cfg.get("url") or "")
    return _torch_file(name, url, "ImageNet") if url else None


def published_coco(detector: str) -> Published | None:
    """The COCO weights torchvision publishes for ``detector`` (None if it has none)."""
    urls = torchvision_urls(detector, "COCO_V1")
    return _torch_file(detector, urls[0], "COCO") if urls else None


def manual_fix(pub: Published) -> str:
    """How to put the file on the machine by hand."""
    if pub.kind == "store":
        return (
            f"download {pub.remote.url} on a networked machine and run "
            f"'cvpipe weights add {pub.model} FILE'"
        )
    return (
        f"download {pub.remote.url} on a networked machine and copy it to {pub.dest} "
        f"(or 'cvpipe weights download {pub.model}' while online)"
    )


def download_published(pub: Published) -> Path:
    """Fetch ``pub`` into its cache (verified, atomic) and, for the store, index it.

    Raises:
        DownloadError: downloads off or failed; the message says how to add the file by hand.
    """
    try:
        got = fetch(pub.remote, pub.dest, desc=f"{pub.model} {pub.what}")
    except DownloadError as exc:
        raise DownloadError(f"{exc}; or {manual_fix(pub)}") from None
    if pub.kind == "store":
        _index_download(pub.model, got.path, got.sha256, got.size, got.url)
    return got.path


def _index_download(model: str, path: Path, sha256: str, size: int, url: str) -> None:
    index = read_index()
    index["models"][model] = {
        "file": path.name,
        "sha256": sha256,
        "size": size,
        "added": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "origin": url,
        "mapping": "by name",
        "linked": False,
    }
    write_json(store_dir() / INDEX_NAME, index)


def download_note(pub: Published | None) -> str:
    """Why no download happened or was tried (for a not-found message)."""
    if pub is None:
        return "no published weights exist for it"
    reason = offline_reason()
    if reason:
        return f"downloads are off ({reason}); {manual_fix(pub)}"
    return manual_fix(pub)
