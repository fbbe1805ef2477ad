"""Exact nearest neighbours and near-duplicate groups.

Search is exact (brute force over every pair): at the sizes an audit meets (thousands to
tens of thousands of images) it costs seconds, and no approximate index can miss a pair.
Three exact backends return the same pairs; ``benchmarks/audit_quality.py`` times them:
on 10,000 x 1,280 unit vectors (best of 2, two runs on a loaded 2-core machine) faiss's
``IndexFlatIP`` took 7.1-8.9 s, a chunked NumPy matrix product 16.5-18.9 s,
scikit-learn's brute-force cosine ``NearestNeighbors`` 22.8-53 s; on the 1,118 weather
images all took under 0.3 s, against 45-100 s for the feature pass. ``auto`` (default)
uses faiss when installed (it is in the
``audit`` extra), else NumPy.

Pairs at or above the similarity threshold are joined into groups (connected
components); a group is a *leak* when it spans more than one split and *conflicting* when
its members carry different labels. Byte-identical files (same blake2b digest) are always
joined, whatever their embeddings.

Example:
    >>> sims, idx = knn(np.eye(3, dtype=np.float32), k=1, backend="numpy")
    >>> idx.shape
    (3, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvpipe.audit.deps import import_faiss, import_sklearn

_CHUNK = 2048


def knn(vectors: np.ndarray, k: int, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar other rows of each row (cosine of unit vectors), exactly.

    Args:
        vectors: ``[N, D]`` unit-norm rows (zero rows never match).
        k: neighbours per row (capped at N - 1).
        backend: ``auto`` (faiss if installed, else numpy), ``faiss``, ``numpy`` or
            ``sklearn``.

    Returns:
        ``(similarities [N, k], indices [N, k])``, most similar first, self excluded.
    """
    n = len(vectors)
    k = max(0, min(k, n - 1))
    if k == 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if backend == "auto":
        backend = "faiss" if _has_faiss() else "numpy"
    if backend == "faiss":
        faiss = import_faiss()
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        sims, idx = index.search(x, k + 1)
    elif backend == "sklearn":
        sk = import_sklearn()
        nn = sk.neighbors.NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine")
        nn.fit(x)
        dist, idx = nn.kneighbors(x)
        sims = 1.0 - dist
    elif backend == "numpy":
        sims = np.empty((n, k + 1), np.float32)
        idx = np.empty((n, k + 1), np.int64)
        for start in range(0, n, _CHUNK):
            s = x[start : start + _CHUNK] @ x.T
            part = np.argpartition(-s, k, axis=1)[:, : k + 1]
            ps = np.take_along_axis(s, part, axis=1)
            order = np.argsort(-ps, axis=1, kind="stable")
            idx[start : start + len(s)] = np.take_along_axis(part, order, axis=1)
            sims[start : start + len(s)] = np.take_along_axis(ps, order, axis=1)
    else:
        raise ValueError(
            f"unknown nearest-neighbour backend {backend!r}; use auto, faiss, numpy or sklearn"
        )
    return _drop_self(np.asarray(sims, np.float32), np.asarray(idx, np.int64), k)


def _has_faiss() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def _drop_self(sims: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(idx))[:, None]
    keep = idx != rows
    # rows where self was not returned (ties among exact copies): drop the last column
    missing = keep.all(axis=1)
    keep[missing, -1] = False
    return sims[keep].reshape(len(idx), k), idx[keep].reshape(len(idx), k)


def similar_pairs(
    sims: np.ndarray, idx: np.ndarray, threshold: float, valid: np.ndarray | None = None
) -> dict[tuple[int, int], float]:
    """``{(i, j): similarity}`` for every neighbour pair at or above ``threshold`` (i < j)."""
    out: dict[tuple[int, int], float] = {}
    rows, cols = np.nonzero(sims >= threshold)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        j = int(idx[r, c])
        if valid is not None and not (valid[r] and valid[j]):
            continue
        key = (r, j) if r < j else (j, r)
        out[key] = max(out.get(key, -1.0), float(sims[r, c]))
    return out


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class DuplicateGroup:
    """Images that are (near-)copies of one another.

    Attributes:
        members: record positions, in record order.
        splits: the splits they are in (``None`` for unsplit records).
        labels: their label keys (class names; for detect sets the sorted box classes).
        similarity: the lowest similarity of a pair that joined the group.
        identical: every member has the same file bytes.
        leak: the group spans more than one split.
        conflict: its members carry different labels.
    """

    members: list[int]
    splits: list[str | None]
    labels: list[str]
    similarity: float
    identical: bool
    leak: bool
    conflict: bool
    pairs: list[tuple[int, int, float]] = field(default_factory=list)

    def to_json(self, ids: Sequence[str], files: Sequence[str]) -> dict[str, Any]:
        return {
            "ids": [ids[i] for i in self.members],
            "files": [files[i] for i in self.members],
            "splits": self.splits,
            "labels": self.labels,
            "similarity": round(self.similarity, 4),
            "identical": self.identical,
            "leak": self.leak,
            "conflicting_labels": self.conflict,
        }


def group_duplicates(
    n: int,
    pairs: dict[tuple[int, int], float],
    digests: Sequence[str | None],
    splits: Sequence[str | None],
    labels: Sequence[str],
) -> list[DuplicateGroup]:
    """Connected components of similar pairs plus byte-identical files.

    Args:
        n: number of records.
        pairs: ``{(i, j): similarity}`` from :func:`similar_pairs`.
        digests: file digest per record (None: unreadable).
        splits: split per record.
        labels: label key per record.

    Returns:
        Groups of two or more, leaks first, then by size.
    """
    uf = _UnionFind(n)
    all_pairs = dict(pairs)
    by_digest: dict[str, list[int]] = {}
    for i, d in enumerate(digests):
        if d is not None:
            by_digest.setdefault(d, []).append(i)
    for members in by_digest.values():
        for j in members[1:]:
            key = (members[0], j)
            all_pairs[key] = max(all_pairs.get(key, 1.0), 1.0)
    for i, j in all_pairs:
        uf.union(i, j)
    comps: dict[int, list[int]] = {}
    for i in sorted({x for p in all_pairs for x in p}):
        comps.setdefault(uf.find(i), []).append(i)
    groups = []
    for members in comps.values():
        if len(members) < 2:
            continue
        mset = set(members)
        gp = sorted((i, j, s) for (i, j), s in all_pairs.items() if i in mset and j in mset)
        g_splits = [splits[i] for i in members]
        g_labels = [labels[i] for i in members]
        d0 = digests[members[0]]
        groups.append(
            DuplicateGroup(
                members,
                g_splits,
                g_labels,
                min(s for _, _, s in gp),
                d0 is not None and all(digests[i] == d0 for i in members),
                len(set(g_splits)) > 1,
                len(set(g_labels)) > 1,
                gp,
            )
        )
    groups.sort(key=lambda g: (not g.leak, not g.conflict, -len(g.members), g.members[0]))
    return groups
