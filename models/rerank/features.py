"""The features of a reranker's candidates: every (user, item) pair the retrievers propose.

:func:`candidate_features` gathers the candidate entries of a chunk of users from the deep
retriever, item co-occurrence and popularity (integer ids of the reranker's
:class:`~models.retrieval.candidates.CandidateIndex`), keeps one row per (user, item) and describes it
with the :data:`FEATURES`, all with a few numpy calls per chunk. :mod:`models.rerank.online` scores
the rows with its River model's weights and learns from the rows of the lists it showed.

>>> F == len(FEATURES) == 13, SOURCES
(True, ('deep', 'cooccurrence', 'popularity'))
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np

from models.base import Ranked, UserContext
from models.deep.candidates import entries as deep_entries

if TYPE_CHECKING:
    from models.rerank.online import OnlineRanker

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


def candidate_features(r: OnlineRanker, users: Sequence[UserContext], excludes: Sequence[Collection[str]],
                       deep_lists: Sequence[Ranked] | None = None):
    """``(user row, item id, source, feature rows)`` of every candidate of ``users`` for ranker ``r``.

    Excluded items are left out; ``source`` indexes :data:`SOURCES` (the retriever that ranked
    the item highest).
    """
    p = r.params
    idx = r.index
    cap = idx.capacity
    n_users = len(users)
    pop_ids, top_dec = r._pop_top()
    n_pop = len(pop_ids)
    # candidate entries: deep (src 0), co-occurrence (src 1), popularity (src 2)
    parts_u, parts_i, parts_s, parts_r, parts_rel = [], [], [], [], []
    if deep_lists is not None:
        du, di, dr, drel = deep_entries(deep_lists, idx.intern, r._pool_ids)
        cap = idx.capacity  # interning may have grown the index
        parts_u.append(du)
        parts_i.append(di)
        parts_s.append(np.zeros(len(du), np.int64))
        parts_r.append(dr)
        parts_rel.append(drel)
    v = idx.votes(users, p["n_cooc"])
    parts_u.append(v.users)
    parts_i.append(v.items)
    parts_s.append(np.ones(len(v.users), np.int64))
    parts_r.append(v.rank)
    parts_rel.append(np.zeros(len(v.users)))
    parts_u.append(np.repeat(np.arange(n_users, dtype=np.int64), n_pop))
    parts_i.append(np.tile(pop_ids, n_users))
    parts_s.append(np.full(n_users * n_pop, 2, np.int64))
    pr_all = np.tile(np.arange(n_pop, dtype=np.int64), n_users)
    parts_r.append(pr_all)
    parts_rel.append(np.zeros(n_users * n_pop))
    eu, ei, es, er, erel = (np.concatenate(a) for a in (parts_u, parts_i, parts_s, parts_r, parts_rel))
    is_cand = (es != 2) | (er < p["n_popular"])
    n = len(eu)
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, np.zeros((0, F))
    ekeys = eu * cap + ei
    if len(r._counts) < cap:
        r._grow_items()
    # votes of every entry (an item may be voted for without being in the user's top)
    at = idx.lookup(ekeys, v.all_keys)
    if len(v.all_keys):
        has_vote = at >= 0
        e_vote = np.where(has_vote, v.all_votes[np.maximum(at, 0)], 0.0)
        e_last = np.where(has_vote, v.all_last[np.maximum(at, 0)], 0.0)
    else:
        e_vote = e_last = np.zeros(n)
    # group the entries per (user, item): one representative each
    stamp = idx._stamp
    ar = np.arange(n, dtype=np.int32)
    stamp[ekeys] = ar
    rep = stamp[ekeys].astype(np.int64)
    ranks = np.full((3, n), -1, np.int64)
    ranks[es, rep] = er
    deep_rel = np.zeros(n)
    deep_rel[rep[es == 0]] = erel[es == 0]
    cand = np.zeros(n, bool)
    cand[rep[is_cand]] = True
    sel = np.flatnonzero((rep == ar) & cand)
    ku, ki, kk = eu[sel], ei[sel], ekeys[sel]
    dr, cr, pr = ranks[0, sel], ranks[1, sel], ranks[2, sel]
    # exclusions, recent items, the list shown last
    ex_keys, _ = idx.keys_of(excludes)
    keep = idx.lookup(kk, ex_keys) < 0
    if not keep.all():
        ku, ki, kk, dr, cr, pr, sel = ku[keep], ki[keep], kk[keep], dr[keep], cr[keep], pr[keep], sel[keep]
    rec_keys, rec_pos = idx.keys_of([user.recent_items[::-1] for user in users])
    at_rec = idx.lookup(kk, rec_keys[::-1].copy())  # oldest written first: the latest position wins
    rec_d = np.full(len(kk), -1, np.int64)
    found = at_rec >= 0
    rec_d[found] = rec_pos[::-1][at_rec[found]]
    sh_keys, _ = idx.keys_of([user.shown for user in users])
    shown = idx.lookup(kk, sh_keys) >= 0
    cold = np.array([
        (sum(user.counts.values()) if user.counts else len(user.recent_items)) < 3 for user in users
    ], bool)
    # features (see FEATURES)
    m = len(ku)
    X = np.zeros((m, F))
    in_pop, in_cooc, in_deep = pr >= 0, cr >= 0, dr >= 0
    pop_rr = np.where(in_pop, 1.0 / (1.0 + np.maximum(pr, 0)), 0.0)
    pop = r.popularity
    X[:, 0] = pop_rr
    if pop.max_count > 0:
        X[:, 1] = np.log1p(r._counts[ki]) / math.log1p(pop.max_count)
    if top_dec > 0 and pop.last_ts is not None:
        X[:, 2] = np.log1p(np.exp(r._log_scores[ki] - pop._lam * pop.last_ts)) / top_dec
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
    src = np.argmin(np.stack([np.where(r >= 0, r, big) for r in (dr, cr, pr)]), axis=0)
    return ku, ki, src, X
