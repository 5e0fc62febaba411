"""Deep retrieval results for a batch of users, as arrays, and their use as candidate entries.

A deep retriever serving a micro-batch returns ``k`` items for each of hundreds of users. As
Python lists of ``(item_id, score)`` tuples that is thousands of objects per batch, each turned
back into an integer id by the reranker. :class:`DeepCandidates` keeps the top-k as the arrays
the retriever computed (positions in its item pool, scores), and :func:`entries` maps them to
the reranker's item ids with one cached lookup array per pool.

>>> import numpy as np
>>> dc = DeepCandidates(["a", "b", "c"], np.array([[2, 0], [1, 2]]), np.array([[0.9, 0.1], [0.5, -np.inf]]))
>>> dc.lists()
[[('c', 0.9), ('a', 0.1)], [('b', 0.5)]]
>>> select(dc, [1]).lists()
[[('b', 0.5)]]
>>> ids = {}
>>> u, i, r, rel = entries(dc, lambda item: ids.setdefault(item, len(ids)), {})
>>> u.tolist(), i.tolist(), r.tolist(), rel.tolist()
([0, 0, 1], [2, 0, 1], [0, 1, 0], [1.0, 0.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.base import Ranked

PoolCache = dict[int, tuple[Sequence[str], NDArray[np.int64]]]
"""Per item pool (keyed by ``id``): the pool and the reranker id of each of its items."""


class DeepCandidates:
    """Top-k per user: ``positions[u, r]`` indexes ``items``; ``scores[u, r]`` is ``-inf`` past the end."""

    __slots__ = ("counts", "items", "positions", "scores")

    def __init__(self, items: Sequence[str], positions: ArrayLike, scores: ArrayLike) -> None:
        self.items = items
        self.positions = np.asarray(positions, np.int64)
        self.scores = np.asarray(scores, np.float64)
        self.counts = np.isfinite(self.scores).sum(axis=1) if self.scores.size else np.zeros(len(self.scores), int)

    def __len__(self) -> int:
        return len(self.positions)

    def take(self, rows: Sequence[int]) -> DeepCandidates:
        at = np.asarray(rows, np.int64)
        return DeepCandidates(self.items, self.positions[at], self.scores[at])

    def lists(self) -> list[Ranked]:
        """The same candidates as ``(item_id, score)`` lists (the :class:`Recommender` form)."""
        items = self.items
        return [[(items[j], s) for j, s in zip(pos[:n], sc[:n])]
                for pos, sc, n in zip(self.positions.tolist(), self.scores.tolist(), self.counts.tolist())]


def select(deep: DeepCandidates | Sequence[Ranked], rows: Sequence[int]) -> DeepCandidates | list[Ranked]:
    """The candidates of ``rows`` (either form)."""
    if isinstance(deep, DeepCandidates):
        return deep.take(rows)
    return [deep[i] for i in rows]


Entries = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]
"""Candidate entries: user row, item id, rank in the user's list, relative score."""


def entries(deep: DeepCandidates | Sequence[Ranked], intern: Callable[[str], int], cache: PoolCache) -> Entries:
    """Candidate entries ``(user row, item id, rank, relative score)`` as int64/float arrays.

    The relative score is ``(s - lowest) / (highest - lowest)`` within a user's list. ``cache``
    keeps, per item pool, the reranker id of every pool item (ids never change once given).
    """
    if not isinstance(deep, DeepCandidates):
        return _entries_from_lists(deep, intern)
    n, k = deep.positions.shape if deep.positions.ndim == 2 else (len(deep), 0)
    if n == 0 or k == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, np.zeros(0)
    key = id(deep.items)
    hit = cache.get(key)
    if hit is None or hit[0] is not deep.items:
        hit = (deep.items, np.array([intern(item) for item in deep.items], np.int64))
        cache.clear()
        cache[key] = hit
    pool_ids = hit[1]
    valid = np.arange(k)[None, :] < deep.counts[:, None]
    rows = np.arange(n)
    last = np.maximum(deep.counts - 1, 0)
    hi = deep.scores[:, 0]
    lo = deep.scores[rows, last]
    span = np.where(hi > lo, hi - lo, 1.0)
    with np.errstate(invalid="ignore"):
        rel = (deep.scores - lo[:, None]) / span[:, None]
    u = np.broadcast_to(rows[:, None], (n, k))[valid]
    r = np.broadcast_to(np.arange(k)[None, :], (n, k))[valid]
    return u.astype(np.int64), pool_ids[deep.positions[valid]], r.astype(np.int64), rel[valid]


def _entries_from_lists(deep_lists: Sequence[Ranked], intern: Callable[[str], int]) -> Entries:
    du: list[int] = []
    di: list[int] = []
    dr: list[int] = []
    drel: list[float] = []
    for u, lst in enumerate(deep_lists):
        if not lst:
            continue
        hi, lo = lst[0][1], lst[-1][1]
        span = hi - lo if hi > lo else 1.0
        for r, (item, s) in enumerate(lst):
            du.append(u)
            di.append(intern(item))
            dr.append(r)
            drel.append((s - lo) / span)
    return np.array(du, np.int64), np.array(di, np.int64), np.array(dr, np.int64), np.array(drel, float)
