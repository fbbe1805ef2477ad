"""ImageDataset, collate, EpochSampler, stratified carving, transforms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cvpipe.data.datasets import (
    EpochSampler,
    ImageDataset,
    Skipped,
    class_balance_weights,
    collate_skip,
    seeded_rng,
    stratified_carve,
)
from cvpipe.data.manifest import Dataset, DatasetInfo, Record
from cvpipe.data.transforms import AugmentConfig, draft_size, eval_transform, train_transform
from cvpipe.errors import DatasetFormatError
from cvpipe.models.preprocess import Preprocess

PRE = Preprocess(input_size=32, resize_size=36)


def _dataset(tmp_path: Path, make_image, n: int = 4, size=(48, 40)) -> Dataset:
    recs = []
    for i in range(n):
        make_image(tmp_path / f"img{i}.jpg", size, seed=i)
        recs.append(
            Record(
                id=f"r{i}",
                file=f"img{i}.jpg",
                width=size[0],
                height=size[1],
                split="train",
                label=i % 2,
            )
        )
    return Dataset(tmp_path, DatasetInfo(name="t", task="classify", classes=["x", "y"]), recs)


def test_items_are_normalised_tensors(tmp_path: Path, make_image) -> None:
    ds = _dataset(tmp_path, make_image)
    data = ImageDataset(ds, ds.records, eval_transform(PRE))
    x, y = data[1]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 1
    assert data.targets == [0, 1, 0, 1]


def test_seeded_augmentation_is_reproducible_and_leaves_global_rng(
    tmp_path: Path, make_image
) -> None:
    ds = _dataset(tmp_path, make_image)
    aug = AugmentConfig(crop="random-resized", hflip=True, color_jitter=0.3, trivial_augment=True)
    data = ImageDataset(ds, ds.records, train_transform(PRE, aug))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, b = data[(0, 123)][0], data[(0, 123)][0]
    assert torch.equal(a, b) and a.shape == (3, 32, 32)
    assert not torch.equal(a, data[(0, 124)][0])
    assert torch.equal(torch.get_rng_state(), state)


def test_seeded_rng_matches_manual_seed_and_restores_the_generator() -> None:
    torch.manual_seed(5)
    state = torch.get_rng_state()
    with seeded_rng(2**62 + 11):
        fast = (torch.rand(4), torch.randint(0, 100, (3,)))
    assert torch.equal(torch.get_rng_state(), state)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2**62 + 11)
        slow = (torch.rand(4), torch.randint(0, 100, (3,)))
    assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1])
    with pytest.raises(RuntimeError), seeded_rng(3):
        torch.rand(1)
        raise RuntimeError("boom")
    assert torch.equal(torch.get_rng_state(), state)  # restored after an error too


def test_corrupt_images_skip_or_fail(tmp_path: Path, make_image, make_truncated_jpeg) -> None:
    ds = _dataset(tmp_path, make_image)
    make_truncated_jpeg(tmp_path / "img2.jpg", (48, 40))
    (tmp_path / "img3.jpg").unlink()
    data = ImageDataset(ds, ds.records, eval_transform(PRE))
    assert isinstance(data[2], Skipped) and data[2].kind in ("truncated", "corrupt")
    assert data[3].kind == "missing" and data[3].to_json()["action"] == "skipped sample"
    xs, ys, skipped = collate_skip([data[i] for i in range(4)])
    assert (
        xs.shape == (2, 3, 32, 32)
        and ys.tolist() == [0, 1]
        and [s.record_id for s in skipped] == ["r2", "r3"]
    )
    xs, ys, skipped = collate_skip([data[2]])
    assert xs.numel() == 0 and len(skipped) == 1
    strict = ImageDataset(ds, ds.records, eval_transform(PRE), on_error="fail")
    with pytest.raises(DatasetFormatError, match="img2.jpg"):
        strict[2]


def test_draft_decode_reads_large_jpegs_smaller(tmp_path: Path, make_image) -> None:
    ds = _dataset(tmp_path, make_image, n=1, size=(800, 600))
    assert ImageDataset(ds, ds.records).load_image(0).size == (800, 600)
    small = ImageDataset(ds, ds.records, draft=100).load_image(0)
    assert min(small.size) >= 100 and small.size[0] <= 200  # decoded at 1/4 scale


def test_epoch_sampler() -> None:
    a = list(EpochSampler(20, seed=1))
    assert a == list(EpochSampler(20, seed=1)) and sorted(i for i, _ in a) == list(range(20))
    s = EpochSampler(20, seed=1)
    s.set_epoch(1)
    assert [i for i, _ in s] != [i for i, _ in a]
    assert [i for i, _ in EpochSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]
    w = EpochSampler(1000, seed=0, weights=[1.0] * 500 + [0.0] * 500)
    assert len(list(w)) == 1000 and all(i < 500 for i, _ in w)
    r1 = EpochSampler(5, num_replicas=2, rank=1, pad=False, shuffle=False)
    assert [i for i, _ in r1] == [1, 3] and len(r1) == 2
    padded = EpochSampler(5, num_replicas=2, rank=1, shuffle=False)
    assert len(padded) == 3 and len(list(padded)) == 3


def test_stratified_carve_and_weights() -> None:
    labels = [0] * 10 + [1] * 5 + [2] * 1
    keep, cut = stratified_carve(labels, 0.2, seed=0)
    assert sorted(keep + cut) == list(range(16))
    assert sorted(labels[i] for i in cut) == [0, 0, 1]  # the singleton class stays in train
    assert stratified_carve(labels, 0.2, seed=0) == (keep, cut)
    assert stratified_carve(labels, 0.2, seed=1) != (keep, cut)
    w = class_balance_weights([0, 0, 0, 1], 3)
    assert w[0] == pytest.approx(2 / 3) and w[1] == pytest.approx(2.0) and w[2] == 0.0


def test_transforms_and_cacheability() -> None:
    assert AugmentConfig().cacheable and not AugmentConfig(crop="random").cacheable
    assert not AugmentConfig(color_jitter=0.2).cacheable
    assert draft_size(PRE) == 36
    assert draft_size(Preprocess(), AugmentConfig(crop="random-resized")) > 256


def test_random_resized_crop_transform_is_the_torchvision_pipeline() -> None:
    from PIL import Image
    from torchvision.transforms import v2 as T

    from cvpipe.data.transforms import RandomResizedCropTransform

    aug = AugmentConfig(crop="random-resized", hflip=True, color_jitter=0.3, trivial_augment=True)
    tf = train_transform(PRE, aug)
    assert isinstance(tf, RandomResizedCropTransform)
    reference = T.Compose([T.ToImage(), tf.crop, tf.rest])  # what train_transform used to be
    g = torch.Generator().manual_seed(0)
    im = Image.fromarray(
        torch.randint(0, 256, (90, 130, 3), generator=g, dtype=torch.uint8).numpy()
    )
    for seed in range(20):
        with seeded_rng(seed):
            a = tf(im)
        with seeded_rng(seed):
            b = reference(im)
        assert torch.equal(a, b)


def test_random_resized_crop_decodes_just_enough_for_its_box(
    tmp_path: Path, make_image, monkeypatch
) -> None:
    from cvpipe.data import datasets

    ds = _dataset(tmp_path, make_image, n=1, size=(800, 600))
    aug = AugmentConfig(crop="random-resized", hflip=True)
    drafted = ImageDataset(ds, ds.records, train_transform(PRE, aug), draft=draft_size(PRE, aug))
    full = ImageDataset(ds, ds.records, train_transform(PRE, aug))  # draft=None: full decode
    seen: list[tuple[tuple[int, int], tuple[int, int, int, int]]] = []
    apply = datasets.RandomResizedCropTransform.apply

    def spy(self, im, box, size):  # type: ignore[no-untyped-def]
        seen.append((im.size, box))
        return apply(self, im, box, size)

    monkeypatch.setattr(datasets.RandomResizedCropTransform, "apply", spy)
    for seed in range(12):
        a, b = drafted[(0, seed)][0], full[(0, seed)][0]
        assert torch.equal(a, drafted[(0, seed)][0])  # same seed, same crop and flip
        assert (a - b).abs().mean() < 0.25  # the same crop, decoded at another scale
        (dw, dh), (_, _, bh, bw) = seen[-3]
        assert seen[-2] == ((800, 600), seen[-3][1])  # the full decode got the same box
        assert bw * dw / 800 >= 32 - 1e-6 and bh * dh / 600 >= 32 - 1e-6
    sizes = {s for s, _ in seen[::3]}
    assert min(sizes) < (800, 600) and max(w for w, _ in sizes) <= 800  # some boxes drafted
