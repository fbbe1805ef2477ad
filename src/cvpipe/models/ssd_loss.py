"""SSD loss with a minimum number of hard negatives per image, so empty images teach.

torchvision's :class:`~torchvision.models.detection.SSD` mines ``neg_to_pos_ratio`` (3)
hard negatives per *positive* default box of each image. An image without boxes has no
positives, hence no negatives: it contributes nothing to the loss, and a batch of only
such images trains nothing. TF's Object Detection API (the reference of seed 004) mines
with ``max_negatives_per_positive: 3`` *and* ``min_negatives_per_image: 3``;
:class:`MinNegativesSSD` does the same (torchvision keeps that line commented out in its
``compute_loss``). Everything else — matching, box coding, smooth-L1 regression, the
normalisation by the number of positives (at least 1) — is torchvision's, and the module
has the same parameters and state_dict keys as ``SSD``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.models.detection.ssd import SSD


class MinNegativesSSD(SSD):
    """torchvision ``SSD`` whose hard-negative mining keeps at least
    ``min_negatives_per_image`` negatives per image (default 3, as TF's SSD configs)."""

    def __init__(self, *args: Any, min_negatives_per_image: int = 3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_negatives_per_image = int(min_negatives_per_image)

    def compute_loss(
        self,
        targets: list[dict[str, Tensor]],
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        matched_idxs: list[Tensor],
    ) -> dict[str, Tensor]:
        bbox_regression = head_outputs["bbox_regression"]
        cls_logits = head_outputs["cls_logits"]
        num_foreground = 0
        bbox_loss = []
        cls_targets = []
        for tgt, reg, logits, anc, matched in zip(
            targets, bbox_regression, cls_logits, anchors, matched_idxs, strict=True
        ):
            fg = torch.where(matched >= 0)[0]
            fg_matched = matched[fg]
            num_foreground += fg_matched.numel()
            target_reg = self.box_coder.encode_single(tgt["boxes"][fg_matched], anc[fg, :])
            bbox_loss.append(F.smooth_l1_loss(reg[fg, :], target_reg, reduction="sum"))
            cls_target = torch.zeros(
                (logits.size(0),), dtype=tgt["labels"].dtype, device=tgt["labels"].device
            )
            cls_target[fg] = tgt["labels"][fg_matched]
            cls_targets.append(cls_target)
        bbox = torch.stack(bbox_loss)
        cls_t = torch.stack(cls_targets)
        cls_loss = self.anchor_class_loss(cls_logits, cls_t)
        foreground = cls_t > 0
        num_negative = (self.neg_to_pos_ratio * foreground.sum(1, keepdim=True)).clamp(
            min=self.min_negatives_per_image
        )
        negative_loss = cls_loss.detach().clone()
        negative_loss[foreground] = -float("inf")
        _, idx = negative_loss.sort(1, descending=True)
        background = idx.sort(1)[1] < num_negative
        n = max(1, num_foreground)
        return {
            "bbox_regression": bbox.sum() / n,
            "classification": (cls_loss[foreground].sum() + cls_loss[background].sum()) / n,
        }

    def anchor_class_loss(self, cls_logits: Tensor, cls_t: Tensor) -> Tensor:
        """Classification loss per default box, ``[B, A]``, from logits ``[B, A, C]`` and
        class targets ``[B, A]`` (0 = background): softmax cross-entropy, as torchvision."""
        num_classes = cls_logits.size(-1)
        return F.cross_entropy(
            cls_logits.view(-1, num_classes), cls_t.view(-1), reduction="none"
        ).view(cls_t.size())
