"""Weights files on this machine: where they live and how they are read.

- locations: cvpipe's store (``$CVPIPE_HOME/weights`` and its JSON index), torch hub's
  checkpoint cache and the Hugging Face hub cache;
- reading: :func:`read_state_dict` reads a ``.pth/.pt/.bin`` (``torch.load`` with
  ``weights_only=True``) or ``.safetensors`` file into plain tensors by name, unwrapping
  checkpoints; :func:`file_sha256` checksums it.

Which file belongs to which model is :mod:`cvpipe.models.weight_sources`' business.

Example:
    >>> store_dir().name
    'weights'
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cvpipe.errors import CheckpointError, WeightsNotFoundError
from cvpipe.home import cvpipe_home
from cvpipe.io import read_json

INDEX_NAME = "index.json"
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "module")
_STRIP_PREFIXES = ("module.", "_orig_mod.")


def store_dir() -> Path:
    """cvpipe's weights store: ``$CVPIPE_HOME/weights``."""
    return cvpipe_home() / "weights"


def torch_cache_dir() -> Path:
    """torch hub's checkpoint cache (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "huggingface" / "hub"


def read_index() -> dict[str, Any]:
    """The store's index: ``{"version": 1, "models": {name: {file, sha256, size, added, origin}}}``."""
    path = store_dir() / INDEX_NAME
    if not path.is_file():
        return {"version": 1, "models": {}}
    try:
        data = read_json(path)
    except ValueError as exc:
        raise CheckpointError(
            f"{path}: unreadable weights index ({exc}); delete it and re-add the weights"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise CheckpointError(
            f"{path}: not a cvpipe weights index; delete it and re-add the weights"
        )
    return data


def timm_cfg(arch: str) -> dict[str, Any]:
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    return cfg.to_dict() if cfg is not None else {}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_state_dict(path: str | Path, *, classifier: bool = True) -> dict[str, torch.Tensor]:
    """Read tensors from a ``.pth/.pt/.bin`` (``weights_only=True``) or ``.safetensors`` file.

    Wrappers are unwrapped (``{"state_dict": ...}``, cvpipe checkpoints' ``{"model": ...}``)
    and ``module.`` / ``_orig_mod.`` prefixes stripped; with ``classifier`` (a backbone's
    weights), a cvpipe classifier's ``backbone.`` prefix too (not for detector weights).

    Raises:
        WeightsNotFoundError: the file does not exist.
        CheckpointError: unreadable, not a plain tensor mapping, or refused by weights_only.
        MissingDependencyError: a .safetensors file without the safetensors package.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsNotFoundError(
            f"weights file {p} not found; weights must be 'none', 'imagenet' or an existing "
            "weights file; check the path, or use '--weights none' to train from scratch"
        )
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            from cvpipe.errors import MissingDependencyError

            raise MissingDependencyError(
                f"{p}: reading .safetensors needs the safetensors package (pip install safetensors)"
            ) from None
        try:
            obj: Any = load_file(str(p), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{p}: unreadable safetensors file ({exc})") from None
    else:
        try:
            obj = torch.load(p, weights_only=True, map_location="cpu")
        except Exception as exc:  # pickle / zip / weights_only refusals
            raise CheckpointError(
                f"{p}: cannot read as a weights file with torch.load(weights_only=True): {str(exc).splitlines()[0]}; "
                "it must be a plain state_dict (tensors by name), not a pickled model"
            ) from None
    return _unwrap(obj, p, classifier)


def _unwrap(obj: Any, path: Path, classifier: bool = True) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if (
            isinstance(obj, Mapping)
            and obj
            and all(isinstance(v, torch.Tensor) for v in obj.values())
        ):
            break
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
                continue
        raise CheckpointError(
            f"{path}: no tensors by name found (expected a state_dict, got {type(obj).__name__})"
        )
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{path}: no tensors by name found")
    for prefix in _STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    if classifier and any(k.startswith("backbone.") for k in sd):  # a cvpipe ClassifierNet
        sd = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    return sd
