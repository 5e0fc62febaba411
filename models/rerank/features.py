"""The features of a reranker's candidates: every (user, item) pair the retrievers propose.

:func:`candidate_features` gathers the candidate entries of a chunk of users from the deep
retriever, item co-occurrence and popularity (integer ids of the reranker's
:class:`~models.retrieval.candidates.CandidateIndex`), keeps one row per (user, item) and describes it
with the :data:`FEATURES`, all with a few numpy calls per chunk. It reads the retrievers through a
:class:`CandidateSources` (public fields only), which a reranker builds for each chunk;
:mod:`models.rerank.online` scores the rows with its River model's weights and learns from the
rows of the lists it showed.

>>> F == len(FEATURES) == 13, SOURCES
(True, ('deep', 'cooccurrence', 'popularity'))
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from models.base import Ranked, UserContext
from models.deep.candidates import DeepCandidates, PoolCache
from models.deep.candidates import entries as deep_entries
from models.retrieval.candidates import CandidateIndex, Votes
from models.retrieval.popularity import PopularityRecommender

FEATURES: tuple[str, ...] = (
    "pop_rr",  # 1 / (1 + rank) in the popularity leaderboard, 0 when not in it
    "pop_all",  # log1p(all-time count) / log1p(largest count)
    "pop_decayed",  # log1p(decayed score) / log1p(top decayed score)
    "cooc_rr",  # 1 / (1 + rank) among the co-occurrence votes
    "cooc_rel",  # vote / best vote for this user
    "cooc_last",  # transition probability from the user's latest item
    "deep_rr",  # 1 / (1 + rank) in the deep retriever's list
    "deep_rel",  # (score - lowest) / (highest - lowest) in the deep list
    "in_recent",  # the item is among the user's recent items
    "recent_rr",  # 1 / (1 + distance from the end of the recent sequence)
    "cold_pop",  # pop_rr for users with fewer than 3 events
    "shown_before",  # the item was in the list shown last time (and not chosen)
    "n_sources",  # how many retrievers proposed it, / 3
)
F = len(FEATURES)
SOURCES = ("deep", "cooccurrence", "popularity")
"""Where a candidate came from, by the index ``candidate_features`` returns."""

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CandidateSources:
    """What :func:`candidate_features` reads of a reranker's retrievers.

    ``index`` holds the item ids, co-occurrence rows and per-item popularity figures
    (:attr:`CandidateIndex.pop_counts`, :attr:`CandidateIndex.pop_log_scores`); ``popularity``
    gives the leaderboard's scale (``max_count``, ``last_ts``, ``decay_rate``).
    """

    index: CandidateIndex
    popularity: PopularityRecommender
    popular_ids: IntArray
    """Index ids of the popularity leaderboard's head, best first (an item's rank is its position)."""
    top_decayed: float
    """``log1p`` of the leader's decayed score (0 with no leader)."""
    n_popular: int
    """Popular items proposed per user (the rest of :attr:`popular_ids` only gives ranks)."""
    n_cooc: int
    """Co-occurrence votes proposed per user."""
    deep_pool: PoolCache
    """Index ids of the deep retriever's item pool (see :func:`models.deep.candidates.entries`)."""


class _Entries(NamedTuple):
    """Candidate entries, one per (retriever, user, item): possibly several per (user, item)."""

    users: IntArray
    items: IntArray
    source: IntArray
    rank: IntArray
    rel: FloatArray


def _entries(
    src: CandidateSources, users: Sequence[UserContext], deep_lists: DeepCandidates | Sequence[Ranked] | None,
) -> tuple[_Entries, Votes]:
    """Entries of deep (source 0), co-occurrence (source 1) and popularity (source 2), in that order,
    and the users' co-occurrence votes."""
    pop_ids = src.popular_ids
    n_pop = len(pop_ids)
    n_users = len(users)
    parts: list[_Entries] = []
    if deep_lists is not None:  # first: interning deep items may grow the index (and its key space)
        du, di, dr, drel = deep_entries(deep_lists, src.index.intern, src.deep_pool)
        parts.append(_Entries(du, di, np.zeros(len(du), np.int64), dr, drel))
    votes = src.index.votes(users, src.n_cooc)
    parts.append(_Entries(votes.users, votes.items, np.ones(len(votes.users), np.int64), votes.rank,
                          np.zeros(len(votes.users))))
    parts.append(_Entries(np.repeat(np.arange(n_users, dtype=np.int64), n_pop), np.tile(pop_ids, n_users),
                          np.full(n_users * n_pop, 2, np.int64), np.tile(np.arange(n_pop, dtype=np.int64), n_users),
                          np.zeros(n_users * n_pop)))
    return _Entries(*(np.concatenate([p[f] for p in parts]) for f in range(5))), votes


class _Candidates(NamedTuple):
    """One row per kept (user, item): its entry ``sel`` and rank per source (-1: not proposed)."""

    users: IntArray
    items: IntArray
    keys: IntArray
    deep_rank: IntArray
    cooc_rank: IntArray
    pop_rank: IntArray
    sel: IntArray


def _group(idx: CandidateIndex, e: _Entries, ekeys: IntArray, n_popular: int, excludes: Sequence[Collection[str]]
           ) -> tuple[_Candidates, FloatArray]:
    """Group the entries per (user, item), drop excluded items; also each entry's deep relative score."""
    n = len(e.users)
    is_cand = (e.source != 2) | (e.rank < n_popular)
    ar = np.arange(n, dtype=np.int32)
    rep = idx.group(ekeys)
    ranks = np.full((3, n), -1, np.int64)
    ranks[e.source, rep] = e.rank
    deep_rel = np.zeros(n)
    deep_rel[rep[e.source == 0]] = e.rel[e.source == 0]
    cand = np.zeros(n, bool)
    cand[rep[is_cand]] = True
    sel = np.flatnonzero((rep == ar) & cand)
    c = _Candidates(e.users[sel], e.items[sel], ekeys[sel], ranks[0, sel], ranks[1, sel], ranks[2, sel], sel)
    ex_keys, _ = idx.keys_of(excludes)
    keep = idx.lookup(c.keys, ex_keys) < 0
    if not keep.all():
        c = _Candidates(*(a[keep] for a in c))
    return c, deep_rel


def _user_context(idx: CandidateIndex, users: Sequence[UserContext], keys: IntArray
                  ) -> tuple[IntArray, NDArray[np.bool_], NDArray[np.bool_]]:
    """Per candidate: distance from the end of the user's recent items (-1: not among them) and
    whether it was shown last time; per user: whether the user is cold (fewer than 3 events)."""
    rec_keys, rec_pos = idx.keys_of([user.recent_items[::-1] for user in users])
    at_rec = idx.lookup(keys, rec_keys[::-1].copy())  # oldest written first: the latest position wins
    rec_d = np.full(len(keys), -1, np.int64)
    found = at_rec >= 0
    rec_d[found] = rec_pos[::-1][at_rec[found]]
    sh_keys, _ = idx.keys_of([user.shown for user in users])
    shown = idx.lookup(keys, sh_keys) >= 0
    cold = np.array([
        (sum(user.counts.values()) if user.counts else len(user.recent_items)) < 3 for user in users
    ], bool)
    return rec_d, shown, cold


def candidate_features(
    src: CandidateSources, users: Sequence[UserContext], excludes: Sequence[Collection[str]],
    deep_lists: DeepCandidates | Sequence[Ranked] | None = None,
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """``(user row, item id, source, feature rows)`` of every candidate of ``users``.

    Excluded items are left out; ``source`` indexes :data:`SOURCES` (the retriever that ranked
    the item highest).
    """
    idx = src.index
    e, v = _entries(src, users, deep_lists)
    n = len(e.users)
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, np.zeros((0, F))
    ekeys = e.users * idx.capacity + e.items
    # votes of every entry (an item may be voted for without being in the user's top)
    at = idx.lookup(ekeys, v.all_keys)
    if len(v.all_keys):
        has_vote = at >= 0
        e_vote = np.where(has_vote, v.all_votes[np.maximum(at, 0)], 0.0)
        e_last = np.where(has_vote, v.all_last[np.maximum(at, 0)], 0.0)
    else:
        e_vote = e_last = np.zeros(n)
    c, deep_rel = _group(idx, e, ekeys, src.n_popular, excludes)
    rec_d, shown, cold = _user_context(idx, users, c.keys)
    # features (see FEATURES)
    ku, ki, dr, cr, pr, sel = c.users, c.items, c.deep_rank, c.cooc_rank, c.pop_rank, c.sel
    X = np.zeros((len(ku), F))
    in_pop, in_cooc, in_deep = pr >= 0, cr >= 0, dr >= 0
    pop_rr = np.where(in_pop, 1.0 / (1.0 + np.maximum(pr, 0)), 0.0)
    pop, top_dec = src.popularity, src.top_decayed
    X[:, 0] = pop_rr
    if pop.max_count > 0:
        X[:, 1] = np.log1p(idx.pop_counts[ki]) / math.log1p(pop.max_count)
    if top_dec > 0 and pop.last_ts is not None:
        X[:, 2] = np.log1p(np.exp(idx.pop_log_scores[ki] - pop.decay_rate * pop.last_ts)) / top_dec
    X[:, 3] = np.where(in_cooc, 1.0 / (1.0 + np.maximum(cr, 0)), 0.0)
    X[:, 4] = e_vote[sel] / v.best[ku]
    X[:, 5] = e_last[sel]
    X[:, 6] = np.where(in_deep, 1.0 / (1.0 + np.maximum(dr, 0)), 0.0)
    X[:, 7] = deep_rel[sel]
    X[:, 8] = rec_d >= 0
    X[:, 9] = np.where(rec_d >= 0, 1.0 / (1.0 + np.maximum(rec_d, 0)), 0.0)
    X[:, 10] = np.where(cold[ku], pop_rr, 0.0)
    X[:, 11] = shown
    X[:, 12] = (in_pop.astype(float) + in_cooc + in_deep) / 3.0
    big = np.iinfo(np.int64).max
    source = np.argmin(np.stack([np.where(r >= 0, r, big) for r in (dr, cr, pr)]), axis=0)
    return ku, ki, source, X
