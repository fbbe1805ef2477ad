"""The audit's finders on hand-made inputs: exact neighbours, grouping, outliers, size
shortcut, detector disagreements, cleanlab ranking."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from cvpipe.audit.config import DetectionAuditConfig
from cvpipe.audit.detections import compare_boxes
from cvpipe.audit.embeddings import normalise
from cvpipe.audit.labels import find_label_issues, kfold_probabilities
from cvpipe.audit.neighbors import group_duplicates, knn, similar_pairs
from cvpipe.audit.outliers import find_outliers
from cvpipe.audit.shortcut import size_shortcut


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_knn_backends_agree_and_exclude_self() -> None:
    rng = np.random.default_rng(0)
    x = _unit(rng.normal(size=(300, 16)).astype(np.float32))
    x[7] = x[3]  # an exact copy: self may come second among ties
    s1, i1 = knn(x, 5, "sklearn")
    s2, i2 = knn(x, 5, "numpy")
    assert i1.shape == (300, 5)
    assert not (i1 == np.arange(300)[:, None]).any() and not (i2 == np.arange(300)[:, None]).any()
    assert np.allclose(s1, s2, atol=1e-5)
    if importlib.util.find_spec("faiss") is not None:
        s3, i3 = knn(x, 5, "faiss")
        assert np.allclose(s1, s3, atol=1e-5) and not (i3 == np.arange(300)[:, None]).any()
    assert i1[3, 0] == 7 and i1[7, 0] == 3 and s1[3, 0] == pytest.approx(1.0, abs=1e-5)
    brute = x @ x.T
    np.fill_diagonal(brute, -2)
    assert np.allclose(s1[:, 0], brute.max(axis=1), atol=1e-5)  # exact, not approximate


def test_pairs_become_groups_with_leak_and_conflict_flags() -> None:
    # 0~1 similar (train/test, same label), 2~3 similar (same split, labels differ),
    # 4 and 5 byte-identical but far apart in embedding space (unreadable embeddings)
    x = np.zeros((6, 3), np.float32)
    x[0], x[1] = [1, 0, 0], [0.99, 0.1, 0]
    x[2], x[3] = [0, 1, 0], [0, 0.99, 0.1]
    x[4], x[5] = [0, 0, 1], [0, 0.7, -0.7]
    v = _unit(x)
    sims, idx = knn(v, 2, "numpy")
    pairs = similar_pairs(sims, idx, 0.95)
    assert set(pairs) == {(0, 1), (2, 3)}
    groups = group_duplicates(
        6, pairs, [None, None, None, None, "d", "d"],
        ["train", "test", "train", "train", "val", "test"], ["a", "a", "a", "b", "c", "c"],
    )  # fmt: skip
    by = {tuple(g.members): g for g in groups}
    assert set(by) == {(0, 1), (2, 3), (4, 5)}
    assert by[(0, 1)].leak and not by[(0, 1)].conflict and not by[(0, 1)].identical
    assert by[(2, 3)].conflict and not by[(2, 3)].leak
    assert by[(4, 5)].identical and by[(4, 5)].leak
    assert groups[0].leak  # leaks listed first


def test_normalise_centres_and_scales() -> None:
    f = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    valid = np.array([True, True, False])
    v = normalise(f, valid)
    assert np.allclose(v[2], 0) and np.allclose(np.linalg.norm(v[:2], axis=1), 1)
    assert v[0] @ v[1] == pytest.approx(-1.0)  # centred: the two opposite
    assert normalise(f, valid, centre=False)[0] @ normalise(f, valid, centre=False)[
        1
    ] == pytest.approx(0.0)


def test_outlier_is_far_from_every_class_centre() -> None:
    rng = np.random.default_rng(1)
    a = _unit(np.array([1, 0, 0]) + rng.normal(0, 0.05, (20, 3)))
    b = _unit(np.array([0, 1, 0]) + rng.normal(0, 0.05, (20, 3)))
    odd = np.array([[0, 0, 1.0]])
    x = np.concatenate([a, b, odd]).astype(np.float32)
    y = np.array([0] * 20 + [1] * 20 + [0])
    out = find_outliers(x, y, np.ones(41, bool), 2, z=4.0)
    assert [o.index for o in out] == [40]
    # a mislabelled image near the other class is not an outlier
    y2 = y.copy()
    y2[0] = 1
    assert 0 not in [o.index for o in find_outliers(x, y2, np.ones(41, bool), 2, z=4.0)]


def test_size_shortcut_from_the_whole_set_and_from_part_of_a_class() -> None:
    n = 40
    same = size_shortcut([64] * n, [48] * n, [0, 1] * (n // 2), 2)
    assert not same.flagged and same.balanced_accuracy == pytest.approx(0.5, abs=0.1)
    split = size_shortcut([64] * 20 + [500] * 20, [48] * 20 + [400] * 20, [0] * 20 + [1] * 20, 2)
    assert split.flagged and split.balanced_accuracy == pytest.approx(1.0)
    # like hymenoptera: the bulk overlaps, a tail of one class is larger than anything else
    w = [500] * 60 + [2000] * 6 + [500] * 66
    lab = [0] * 66 + [1] * 66
    part = size_shortcut(w, [375] * len(w), lab, 2, classes=["ants", "bees"])
    assert part.flagged and part.exclusive["ants"]["images"] == 6
    assert "width > 500" in part.exclusive["ants"]["rule"]
    assert not size_shortcut(w, [375] * len(w), lab, 2, exclusive_share=0.2).flagged


def test_detector_disagreements_by_kind() -> None:
    gt = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 100, 120, 120]], np.float32)
    gl = np.array([0, 0, 1])
    det = {
        "boxes": np.array([[0, 0, 10, 10], [200, 200, 220, 220], [100, 100, 120, 120]], np.float32),
        "scores": np.array([0.95, 0.9, 0.85], np.float32),
        "labels": np.array([0, 1, 0]),
    }
    found = compare_boxes(3, gt, gl, det, DetectionAuditConfig())
    kinds = sorted((f.kind, tuple(int(v) for v in f.box)) for f in found)
    assert kinds == [
        ("class", (100, 100, 120, 120)),  # a confident class-0 box on a box labelled 1
        ("missing", (200, 200, 220, 220)),  # confident, on no labelled box
        ("spurious", (50, 50, 60, 60)),  # labelled, nothing supports it
        ("spurious", (100, 100, 120, 120)),  # labelled 1, no class-1 detection on it
    ]
    assert not compare_boxes(
        0, gt[:1], gl[:1], {k: v[:1] for k, v in det.items()}, DetectionAuditConfig()
    )


def test_confident_learning_ranks_flipped_labels_first() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 8) * 3
    y = np.repeat(np.arange(4), 50)
    x = centres[y] + rng.normal(0, 0.7, (200, 8))
    noisy = y.copy()
    flipped = rng.choice(200, 10, replace=False)
    noisy[flipped] = (noisy[flipped] + 1) % 4
    probs = kfold_probabilities(x, noisy, n_classes=4, folds=5, seed=0)
    issues, quality = find_label_issues(noisy, probs)
    top = {t.index for t in issues[:10]}
    assert len(top & set(flipped.tolist())) >= 9
    assert all(t.suggested == y[t.index] for t in issues if t.index in set(flipped.tolist()))
    assert quality.shape == (200,)
