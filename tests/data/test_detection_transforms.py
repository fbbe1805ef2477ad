"""Box-aware detection transforms keep boxes on their pixels; detection ground-truth cleaning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cvpipe.config import load_config
from cvpipe.data.detection_datasets import DetectionDataset, collate_detection, detection_targets
from cvpipe.data.detection_transforms import (
    DetectionAugmentConfig,
    detection_eval_transform,
    detection_train_transform,
)
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.errors import ConfigError, DatasetError

W, H = 80, 60
BOX = [10.0, 15.0, 34.0, 45.0]  # red rectangle drawn on a grey image


def scene() -> Image.Image:
    arr = np.full((H, W, 3), 128, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in BOX)
    arr[y1:y2, x1:x2] = (250, 0, 0)
    return Image.fromarray(arr)


def target(
    boxes: list[list[float]] | None = None, labels: list[int] | None = None
) -> dict[str, torch.Tensor]:
    boxes = [BOX] if boxes is None else boxes
    labels = [1] * len(boxes) if labels is None else labels
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels),
    }


def run(
    cfg: DetectionAugmentConfig,
    seed: int,
    tgt: dict[str, torch.Tensor] | None = None,
    size: int = 64,
):
    torch.manual_seed(seed)
    return detection_train_transform(cfg, size)(scene(), tgt or target())


def red_extent(img: torch.Tensor) -> list[float]:
    """xyxy extent of the red pixels of a float image."""
    mask = (img[0] > 0.8) & (img[1] < 0.2)
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_eval_transform_keeps_pixels_and_boxes() -> None:
    img, t = detection_eval_transform()(scene(), target())
    assert img.dtype == torch.float32 and img.shape == (3, H, W)
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    assert t["boxes"].tolist() == [BOX] and t["labels"].tolist() == [1]
    assert type(t["boxes"]) is torch.Tensor  # plain tensors, not tv_tensors


def test_hflip_maps_x1_x2_exactly() -> None:
    cfg = DetectionAugmentConfig(hflip=True)
    flipped = unflipped = 0
    for seed in range(12):
        img, t = run(cfg, seed)
        box = t["boxes"][0].tolist()
        if box == BOX:
            unflipped += 1
        else:
            flipped += 1
            assert box == [W - BOX[2], BOX[1], W - BOX[0], BOX[3]]
            assert torch.equal(
                img, torch.flip(detection_eval_transform()(scene(), target())[0], dims=[2])
            )
        assert red_extent(img) == box
    assert flipped and unflipped


def test_photometric_moves_no_box() -> None:
    cfg = DetectionAugmentConfig(hflip=False, photometric=True)
    for seed in range(6):
        img, t = run(cfg, seed)
        assert t["boxes"].tolist() == [BOX] and img.shape == (3, H, W)


def test_zoom_out_scales_the_scene_down_and_keeps_box_on_object() -> None:
    cfg = DetectionAugmentConfig(hflip=False, zoom_out=3.0)
    zoomed = 0
    for seed in range(12):
        img, t = run(cfg, seed)
        box = t["boxes"][0].tolist()
        h, w = img.shape[-2:]
        assert w / W == pytest.approx(h / H, abs=0.05)  # one scale for both sides
        assert box[2] - box[0] == pytest.approx(BOX[2] - BOX[0]) and box[3] - box[
            1
        ] == pytest.approx(BOX[3] - BOX[1])
        if w > W:
            zoomed += 1
            # the object is now a smaller share of the image
            assert (box[2] - box[0]) / w < (BOX[2] - BOX[0]) / W
        assert red_extent(img) == pytest.approx(box)
    assert zoomed


def test_iou_crop_keeps_boxes_inside_the_crop_and_labels_aligned() -> None:
    cfg = DetectionAugmentConfig(hflip=False, iou_crop=True)
    tgt = target([BOX, [50.0, 5.0, 78.0, 25.0]], [0, 2])
    cropped = 0
    for seed in range(20):
        img, t = run(cfg, seed, tgt)
        h, w = img.shape[-2:]
        cropped += (h, w) != (H, W)
        b = t["boxes"]
        assert b.shape[0] == t["labels"].shape[0] >= 1
        assert bool(
            (b[:, 0] >= 0).all()
            and (b[:, 1] >= 0).all()
            and (b[:, 2] <= w).all()
            and (b[:, 3] <= h).all()
        )
        assert bool(((b[:, 2] - b[:, 0]) >= 1).all() and ((b[:, 3] - b[:, 1]) >= 1).all())
        assert set(t["labels"].tolist()) <= {0, 2}
    assert cropped


def test_scale_jitter_gives_input_size_crops_with_boxes_inside() -> None:
    cfg = DetectionAugmentConfig(hflip=False, scale_jitter=(0.5, 2.0))
    for seed in range(8):
        img, t = run(cfg, seed, size=48)
        assert img.shape == (3, 48, 48)
        b = t["boxes"]
        assert bool((b >= 0).all() and (b[:, [0, 2]] <= 48).all() and (b[:, [1, 3]] <= 48).all())


def test_images_without_boxes_pass_every_augmentation() -> None:
    cfg = DetectionAugmentConfig(
        hflip=True, photometric=True, zoom_out=2.0, iou_crop=True, scale_jitter=(0.5, 1.5)
    )
    for seed in range(6):
        img, t = run(cfg, seed, target([], []), size=48)
        assert img.shape == (3, 48, 48) and t["boxes"].shape == (0, 4) and t["labels"].shape == (0,)


def test_bad_scale_jitter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="scale_jitter"):
        load_config(DetectionAugmentConfig, overrides=["scale_jitter=[2.0, 1.0]"])


# ---------------------------------------------------------------- ground-truth cleaning
def rec(i: int, boxes: list[list[float]], labels: list[int]) -> Record:
    return Record(
        id=f"r{i}",
        file=f"images/{i}.png",
        width=W,
        height=H,
        split="train",
        boxes=boxes,
        labels=labels,
    )


def test_boxes_outside_the_image_are_clipped_and_degenerate_boxes_dropped() -> None:
    records = [
        rec(0, [[-5.0, 10.0, 30.0, 70.0], BOX], [0, 1]),  # outside left and bottom
        rec(
            1,
            [[20.0, 20.0, 20.0, 40.0], [90.0, 5.0, 99.0, 20.0], [5.0, 5.0, float("nan"), 9.0]],
            [0, 1, 1],
        ),
        rec(2, [], []),  # a negative
    ]
    t = detection_targets(records, num_classes=2)
    assert t.boxes[0].tolist() == [[0.0, 10.0, 30.0, 60.0], BOX]
    assert t.labels[0].tolist() == [0, 1]
    assert t.boxes[1].shape == (0, 4) and t.labels[1].shape == (0,)
    assert t.boxes[2].shape == (0, 4)
    kinds = [(p.record_id, p.box, p.kind) for p in t.problems]
    assert kinds == [
        ("r0", 0, "box_outside_image"),
        ("r1", 0, "degenerate_box"),
        ("r1", 1, "box_outside_image"),
        ("r1", 1, "degenerate_box"),
        ("r1", 2, "degenerate_box"),
    ]
    assert (t.clipped, t.dropped) == (2, 3)
    row = t.problems[0].to_json()
    assert (
        row["action"] == "clipped box"
        and "outside" in row["message"]
        and row["file"] == "images/0.png"
    )


def test_class_id_outside_the_model_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match=r"record 'r3'.*class id 5.*2 classes"):
        detection_targets([rec(3, [BOX], [5])], num_classes=2)
    with pytest.raises(DatasetError, match="2 boxes but 1 labels"):
        detection_targets([rec(4, [BOX, BOX], [0])], num_classes=2)


def test_detection_dataset_rescales_boxes_to_the_decoded_image(tmp_path) -> None:
    big = scene().resize((W * 2, H * 2), Image.Resampling.NEAREST)
    (tmp_path / "images").mkdir()
    big.save(tmp_path / "images" / "0.png")
    r = Record(
        id="r0", file="images/0.png", width=W, height=H, boxes=[BOX], labels=[0]
    )  # record says 80x60
    ds = Dataset(tmp_path, DatasetInfo(name="d", task="detect", classes=["a"]), [r])
    data = DetectionDataset(ds, [r], detection_targets([r], 1), detection_eval_transform())
    img, t = data[(0, 123)]
    assert img.shape == (3, 2 * H, 2 * W)
    assert t["boxes"].tolist() == [[2 * v for v in BOX]]
    images, targets, skipped = collate_detection([data[0], data[0]])
    assert len(images) == len(targets) == 2 and skipped == []
