"""The SSD detectors cvpipe assembles itself: feature extractors, default boxes, builders.

torchvision ships SSD300-VGG16 and SSDlite320-MobileNetV3 only. The reference projects
need two more, built here from torchvision parts (:class:`~torchvision.models.detection.SSD`,
:class:`~torchvision.models.detection.anchor_utils.DefaultBoxGenerator`, ``SSDHead``,
``SSDLiteHead``):

- seed 000, SSD with a ResNet-50 backbone at 512 px (GluonCV ``ssd_512_resnet50_v1``):
  :class:`ResNetSSDFeatures` gives ResNet-50 ``layer3`` (1024 ch, stride 16) and
  ``layer4`` (2048 ch, stride 32) plus four extra maps (512, 512, 256, 256 ch, each stride
  2): six maps, 32² … 1² at 512 px. :func:`ssd512_anchors` uses GluonCV's box sizes
  (51.2 … 492 px at 512) as fractions of the input, so the boxes fit any input size.
- seed 004, SSD-MobileNetV2 320 (TF ``ssd_mobilenet_v2_320x320``):
  :class:`MobileNetV2SSDLiteFeatures` taps MobileNetV2 at the 1×1 expansion of block 14
  (576 ch, stride 16) and at the last 1×1 conv (1280 ch, stride 32), then four depthwise
  extra blocks (512, 256, 256, 128 ch), as SSDLite does (MobileNetV2 paper, §6.3).
- seed 004, SSD-MobileNetV2-FPNLite 320: :class:`MobileNetV2FPNLiteFeatures` runs a
  lightweight FPN (:class:`FPNLite`: 1×1 laterals, nearest top-down sum, depthwise-separable
  3×3 smoothing) over C3/C4/C5 (32/96/1280 ch, strides 8/16/32) and adds P6/P7 with
  stride-2 depthwise-separable convs: five 128-channel maps (40² … 3² at 320 px).

The ``build_*`` functions at the end assemble complete torchvision ``SSD`` models
(plus SSD300-VGG16 and SSDlite320-MobileNetV3 rebuilt from torchvision's recipe so that
offline ImageNet backbone weights can be loaded); :mod:`cvpipe.models.detection`
registers them.

Every extractor returns an ``OrderedDict`` of feature maps, first (finest) to last, and
exposes ``out_channels`` (one entry per map), as :class:`~torchvision.models.detection.SSD`
expects. Default boxes use ``steps=None``: box centres follow each map's grid, so anchors
fit whatever input size the detector is built for.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.ops.misc import Conv2dNormActivation

from cvpipe.errors import CheckpointError

NormLayer = Callable[..., nn.Module]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# GluonCV ssd_512_resnet50_v1: box sizes 51.2, 102.4, 189.4, 276.4, 363.52, 450.6, 492 px at 512.
SSD512_SCALES = [0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 0.96]
SSD512_RATIOS = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
# TF ssd_mobilenet_v2_320x320: min_scale 0.2, max_scale 0.95, ratios 1, 2, 1/2, 3, 1/3.
SSDLITE_RATIOS = [[2, 3]] * 6
# TF FPN-lite: anchor_scale 4 x stride (levels 3..7) at 320 px, ratios 1, 2, 1/2.
FPNLITE_SCALES = [0.1, 0.2, 0.4, 0.8, 0.95, 1.0]
FPNLITE_RATIOS = [[2]] * 5


class SafeBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that still works on a training batch with one value per channel.

    SSD's last extra map is 1×1, so a training batch of one image (e.g. the last, partial
    batch of an epoch) makes plain BatchNorm raise. In that case this layer normalises
    with its running statistics (and leaves them unchanged), as in eval mode. Same
    parameters and state_dict keys as ``nn.BatchNorm2d``.
    """

    plain_in_eval = True  # in eval mode exactly nn.BatchNorm2d (cvpipe.models.fuse folds it)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias,
                False, 0.0, self.eps,
            )  # fmt: skip
        return super().forward(x)


def ssdlite_norm() -> NormLayer:
    """The BatchNorm torchvision's SSDlite uses (TF defaults: eps 1e-3, momentum 0.03),
    as :class:`SafeBatchNorm2d`."""
    return partial(SafeBatchNorm2d, eps=0.001, momentum=0.03)


def ssd512_anchors() -> DefaultBoxGenerator:
    """Default boxes of seed 000's SSD-512 (4, 6, 6, 6, 4, 4 boxes per location)."""
    return DefaultBoxGenerator(SSD512_RATIOS, scales=list(SSD512_SCALES))


def ssdlite_anchors() -> DefaultBoxGenerator:
    """Default boxes of SSDlite-320 (6 per location on six maps, scales 0.2 → 0.95)."""
    return DefaultBoxGenerator(SSDLITE_RATIOS, min_ratio=0.2, max_ratio=0.95)


def fpnlite_anchors() -> DefaultBoxGenerator:
    """Default boxes of the FPN-lite variant (4 per location on P3..P7)."""
    return DefaultBoxGenerator(FPNLITE_RATIOS, scales=list(FPNLITE_SCALES))


def _init_conv(module: nn.Module, std: float | None = None) -> None:
    """Xavier (``std=None``) or normal(0, std) weights and zero biases for new conv layers."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if std is None:
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)


def _last_conv_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels)


def _ssd_extra(in_ch: int, out_ch: int, norm_layer: NormLayer) -> nn.Sequential:
    """SSD extra layer: 1×1 to half width, then 3×3 stride 2 (each with norm + ReLU)."""
    mid = max(out_ch // 2, 16)
    return nn.Sequential(
        Conv2dNormActivation(in_ch, mid, kernel_size=1, norm_layer=norm_layer),
        Conv2dNormActivation(mid, out_ch, kernel_size=3, stride=2, norm_layer=norm_layer),
    )


def _dw_separable(in_ch: int, out_ch: int, stride: int, norm_layer: NormLayer) -> nn.Sequential:
    """Depthwise 3×3 (stride ``stride``) then pointwise 1×1, each with norm + ReLU6."""
    return nn.Sequential(
        Conv2dNormActivation(
            in_ch, in_ch, 3, stride=stride, groups=in_ch, norm_layer=norm_layer,
            activation_layer=nn.ReLU6,
        ),
        Conv2dNormActivation(in_ch, out_ch, 1, norm_layer=norm_layer, activation_layer=nn.ReLU6),
    )  # fmt: skip


def _ssdlite_extra(in_ch: int, out_ch: int, norm_layer: NormLayer) -> nn.Sequential:
    """SSDLite extra layer: 1×1 to half width, depthwise 3×3 stride 2, 1×1 to ``out_ch``."""
    mid = out_ch // 2
    act = nn.ReLU6
    return nn.Sequential(
        Conv2dNormActivation(in_ch, mid, 1, norm_layer=norm_layer, activation_layer=act),
        Conv2dNormActivation(
            mid, mid, 3, stride=2, groups=mid, norm_layer=norm_layer, activation_layer=act
        ),
        Conv2dNormActivation(mid, out_ch, 1, norm_layer=norm_layer, activation_layer=act),
    )


def _as_dict(maps: Sequence[Tensor]) -> OrderedDict[str, Tensor]:
    return OrderedDict((str(i), v) for i, v in enumerate(maps))


class ResNetSSDFeatures(nn.Module):
    """ResNet ``layer3`` and ``layer4`` maps plus SSD extra layers (seed 000's SSD-512).

    Args:
        trunk: a torchvision ResNet (its ``avgpool``/``fc`` are not used). Parameter names
            stay those of the ResNet under ``body.`` (``body.layer3.0.conv1.weight``).
        extra_channels: output channels of the extra maps (each halves the resolution).
        norm_layer: normalisation for the extra layers.

    Shapes:
        images ``[N, 3, S, S]`` → maps ``[N, 1024, S/16, S/16]``, ``[N, 2048, S/32, S/32]``,
        then ``[N, c, ·, ·]`` for each extra channel count ``c`` (never below 1×1).
    """

    def __init__(
        self,
        trunk: nn.Module,
        extra_channels: Sequence[int] = (512, 512, 256, 256),
        norm_layer: NormLayer = SafeBatchNorm2d,
    ) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(trunk, {"layer3": "c4", "layer4": "c5"})
        c4 = _last_conv_channels(trunk.get_submodule("layer3"))
        c5 = _last_conv_channels(trunk.get_submodule("layer4"))
        extras, prev = [], c5
        for ch in extra_channels:
            extras.append(_ssd_extra(prev, ch, norm_layer))
            prev = ch
        self.extra = nn.ModuleList(extras)
        _init_conv(self.extra)
        self.out_channels = [c4, c5, *extra_channels]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body(x)
        x = feats["c5"]
        out = [feats["c4"], x]
        for block in self.extra:
            x = block(x)
            out.append(x)
        return _as_dict(out)


class MobileNetV2SSDLiteFeatures(nn.Module):
    """MobileNetV2 tapped at C4's expansion and at the end, plus SSDLite extra layers.

    Args:
        features: ``torchvision.models.mobilenet_v2().features`` (19 blocks), with any
            ImageNet weights already loaded: its modules are reused, re-grouped into
            ``features.0`` (stem … block 14's 1×1 expansion) and ``features.1`` (block 14's
            depthwise conv … the last 1×1 conv), as torchvision does for MobileNetV3.
        norm_layer: normalisation for the extra layers.
        c4_pos: index of the stride-2 block whose expansion output is C4 (14).
        extra_channels: output channels of the four extra maps.

    Shapes:
        images ``[N, 3, S, S]`` → ``[N, 576, S/16]``, ``[N, 1280, S/32]``, then the extra maps.
    """

    def __init__(
        self,
        features: nn.Sequential,
        norm_layer: NormLayer,
        c4_pos: int = 14,
        extra_channels: Sequence[int] = (512, 256, 256, 128),
    ) -> None:
        super().__init__()
        block: Any = features[c4_pos]
        if getattr(block, "use_res_connect", True) or not hasattr(block, "conv"):
            raise ValueError(f"features[{c4_pos}] must be a strided MobileNetV2 block")
        expand: nn.Module = block.conv[0]
        self.features = nn.Sequential(
            nn.Sequential(*features[:c4_pos], expand),
            nn.Sequential(block.conv[1:], *features[c4_pos + 1 :]),
        )
        c4 = _last_conv_channels(expand)
        c5 = _last_conv_channels(features[-1])
        extras, prev = [], c5
        for ch in extra_channels:
            extras.append(_ssdlite_extra(prev, ch, norm_layer))
            prev = ch
        self.extra = nn.ModuleList(extras)
        _init_conv(self.extra, std=0.03)
        self.out_channels = [c4, c5, *extra_channels]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        out = []
        for stage in self.features:
            x = stage(x)
            out.append(x)
        for block in self.extra:
            x = block(x)
            out.append(x)
        return _as_dict(out)


class FPNLite(nn.Module):
    """A lightweight feature pyramid: 1×1 laterals, nearest top-down sums, depthwise-separable
    3×3 smoothing, and ``extra_levels`` stride-2 depthwise-separable levels on top.

    Args:
        in_channels: channels of the input maps, finest first.
        width: channels of every output map.
        extra_levels: levels added above the coarsest input (P6, P7, ...).
        norm_layer: normalisation for the depthwise-separable convs.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        width: int = 128,
        extra_levels: int = 2,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.smooth = nn.ModuleList(_dw_separable(width, width, 1, norm_layer) for _ in in_channels)
        self.extra = nn.ModuleList(
            _dw_separable(width, width, 2, norm_layer) for _ in range(extra_levels)
        )
        _init_conv(self, std=0.03)
        self.out_channels = [width] * (len(in_channels) + extra_levels)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        lateral = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        top = lateral[-1]
        out = [self.smooth[-1](top)]
        for i in range(len(lateral) - 2, -1, -1):
            top = lateral[i] + F.interpolate(top, size=lateral[i].shape[-2:], mode="nearest")
            out.insert(0, self.smooth[i](top))
        x = out[-1]
        for block in self.extra:
            x = block(x)
            out.append(x)
        return out


class MobileNetV2FPNLiteFeatures(nn.Module):
    """MobileNetV2 C3/C4/C5 through :class:`FPNLite` (seed 004's SSD-MobileNetV2-FPNLite).

    Args:
        features: ``torchvision.models.mobilenet_v2().features``; parameter names stay
            under ``body.`` (``body.0.0.weight`` … ``body.18.1.bias``).
        norm_layer: normalisation for the FPN.
        taps: indices of the blocks ending the stride-8, -16 and -32 stages (6, 13, 18).
        width: FPN channels.
        extra_levels: P6, P7.

    Shapes:
        images ``[N, 3, S, S]`` → five ``[N, 128, ·, ·]`` maps at strides 8, 16, 32, 64, 128.
    """

    def __init__(
        self,
        features: nn.Sequential,
        norm_layer: NormLayer,
        taps: Sequence[int] = (6, 13, 18),
        width: int = 128,
        extra_levels: int = 2,
    ) -> None:
        super().__init__()
        self.body = IntermediateLayerGetter(features, {str(i): str(i) for i in taps})
        in_channels = [_last_conv_channels(features[i]) for i in taps]
        self.fpn = FPNLite(in_channels, width, extra_levels, norm_layer)
        self.out_channels = list(self.fpn.out_channels)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return _as_dict(self.fpn(list(self.body(x).values())))


def count_default_boxes(generator: DefaultBoxGenerator, grid_sizes: Sequence[int]) -> int:
    """Number of default boxes for square feature maps of the given side lengths."""
    per_location = generator.num_anchors_per_location()
    return int(sum(n * s * s for n, s in zip(per_location, grid_sizes, strict=True)))


def feature_grid_sizes(extractor: nn.Module, size: int) -> list[int]:
    """Side lengths of an extractor's maps for a ``size``×``size`` input (runs it once)."""
    was_training = extractor.training
    extractor.eval()
    with torch.no_grad():
        maps = extractor(torch.zeros(1, 3, size, size))
    extractor.train(was_training)
    return [int(m.shape[-1]) for m in maps.values()]


# ---------------------------------------------------------------------- builders
@dataclass(frozen=True)
class BuildArgs:
    """What a builder needs (num_classes counts the background: dataset classes + 1)."""

    num_classes: int
    input_size: int
    score_thresh: float
    nms_iou: float
    detections_per_img: int
    backbone_state: dict[str, Tensor] | None
    extra: dict[str, Any]


def load_state_into(
    module: nn.Module, state: Mapping[str, Tensor], *, strip: str = "", where: str
) -> int:
    """Copy ``state`` (keys minus ``strip``) into ``module``; every module tensor must be there."""
    src = {k[len(strip) :]: v for k, v in state.items() if k.startswith(strip)}
    target = module.state_dict()
    missing = [k for k in target if k not in src and not k.endswith("num_batches_tracked")]
    wrong = [k for k in target if k in src and src[k].shape != target[k].shape]
    if missing or wrong:
        raise CheckpointError(
            f"{where}: backbone weights do not fit: missing {missing[:4]}, wrong shapes {wrong[:4]}"
        )
    clean = {k: src.get(k, target[k]) for k in target}
    module.load_state_dict(clean, strict=True)
    return len(clean)


def _ssd(
    backbone: nn.Module,
    anchors: DefaultBoxGenerator,
    head: nn.Module,
    a: BuildArgs,
    mean: list[float],
    std: list[float],
) -> nn.Module:
    from cvpipe.models.ssd_loss import MinNegativesSSD

    return MinNegativesSSD(
        backbone,
        anchors,
        (a.input_size, a.input_size),
        a.num_classes,
        image_mean=mean,
        image_std=std,
        head=head,
        score_thresh=a.score_thresh,
        nms_thresh=a.nms_iou,
        detections_per_img=a.detections_per_img,
        topk_candidates=max(400, a.detections_per_img),
    )


def build_ssd512_resnet50(a: BuildArgs) -> nn.Module:
    from torchvision.models import resnet50
    from torchvision.models.detection.ssd import SSDHead

    trunk = resnet50(weights=None)
    trunk.fc = nn.Identity()
    if a.backbone_state is not None:
        load_state_into(trunk, a.backbone_state, where="ssd512_resnet50")
    features = ResNetSSDFeatures(trunk)
    anchors = ssd512_anchors()
    head = SSDHead(features.out_channels, anchors.num_anchors_per_location(), a.num_classes)
    return _ssd(features, anchors, head, a, IMAGENET_MEAN, IMAGENET_STD)


def _mobilenet_v2_features(
    a: BuildArgs, norm_layer: Callable[..., nn.Module], name: str
) -> nn.Sequential:
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2(weights=None, norm_layer=norm_layer)
    if a.backbone_state is not None:
        load_state_into(net.features, a.backbone_state, strip="features.", where=name)
    return net.features


def build_ssdlite_mnv2(a: BuildArgs) -> nn.Module:
    from torchvision.models.detection.ssdlite import SSDLiteHead

    norm = ssdlite_norm()
    features = MobileNetV2SSDLiteFeatures(
        _mobilenet_v2_features(a, norm, "ssdlite320_mobilenet_v2"), norm
    )
    anchors = ssdlite_anchors()
    head = SSDLiteHead(
        features.out_channels, anchors.num_anchors_per_location(), a.num_classes, norm
    )
    return _ssd(features, anchors, head, a, IMAGENET_MEAN, IMAGENET_STD)


def build_ssdlite_mnv2_fpnlite(a: BuildArgs) -> nn.Module:
    from torchvision.models.detection.ssdlite import SSDLiteHead

    norm = ssdlite_norm()
    name = "ssdlite320_mobilenet_v2_fpnlite"
    features = MobileNetV2FPNLiteFeatures(_mobilenet_v2_features(a, norm, name), norm)
    anchors = fpnlite_anchors()
    head = SSDLiteHead(
        features.out_channels, anchors.num_anchors_per_location(), a.num_classes, norm
    )
    return _ssd(features, anchors, head, a, IMAGENET_MEAN, IMAGENET_STD)


def build_ssdlite_mnv3(a: BuildArgs) -> nn.Module:
    """torchvision's ssdlite320_mobilenet_v3_large recipe, assembled so that ImageNet
    weights can be loaded (torchvision's builder uses a reduced tail without them)."""
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet, SSDLiteHead

    norm = ssdlite_norm()
    pretrained = a.backbone_state is not None
    net = mobilenet_v3_large(weights=None, norm_layer=norm, reduced_tail=not pretrained)
    if pretrained:
        load_state_into(
            net.features,
            a.backbone_state or {},
            strip="features.",
            where="ssdlite320_mobilenet_v3_large",
        )
    else:
        _init_conv(net, std=0.03)
    stages = [i for i, b in enumerate(net.features) if getattr(b, "_is_cn", False)]
    features = SSDLiteFeatureExtractorMobileNet(net.features, stages[-1], norm)
    out_channels = [_last_conv_channels(m) for m in [*features.features, *features.extra]]
    anchors = ssdlite_anchors()
    head = SSDLiteHead(out_channels, anchors.num_anchors_per_location(), a.num_classes, norm)
    return _ssd(features, anchors, head, a, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])


def build_ssd300_vgg16(a: BuildArgs) -> nn.Module:
    """torchvision's ssd300_vgg16 recipe over a plain VGG16 feature stack (ImageNet
    normalisation, as torchvision's classification VGG16 weights expect)."""
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSDFeatureExtractorVGG, SSDHead
    from torchvision.models.vgg import cfgs, make_layers

    vgg = make_layers(cfgs["D"], batch_norm=False)
    if a.backbone_state is not None:
        load_state_into(vgg, a.backbone_state, strip="features.", where="ssd300_vgg16")
    features = SSDFeatureExtractorVGG(vgg, highres=False)
    anchors = DefaultBoxGenerator(
        [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
        steps=[8, 16, 32, 64, 100, 300],
    )
    out_channels = [512, 1024, 512, 256, 256, 256]
    head = SSDHead(out_channels, anchors.num_anchors_per_location(), a.num_classes)
    return _ssd(features, anchors, head, a, IMAGENET_MEAN, IMAGENET_STD)
