"""Ranking metrics for prequential evaluation, accumulated one recommendation at a time.

Per event (the item the user actually chose is the target):

* ``hr@10`` - 1 if the target is in the top 10;
* ``ndcg@10`` - ``1 / log2(position + 2)`` if the target is in the top 10 (one relevant item,
  so the ideal DCG is 1);
* ``mrr@20`` - ``1 / (position + 1)`` if the target is in the top 20.

Over the whole replay:

* ``coverage`` - distinct items ever recommended in a top 10, divided by the distinct items
  seen in the stream;
* ``novelty`` - mean of ``-log2(p(i))`` over recommended top-10 items, with ``p(i)`` the item's
  share of the events seen *before* the recommendation (add-one smoothed);
* ``diversity`` - intra-list diversity: ``1 - mean pairwise cosine`` over a sample of top-10
  lists, the cosine being between the items' sets of users (``|U_a & U_b| / sqrt(|U_a| |U_b|)``)
  computed on the whole replay.

>>> acc = RankingAccumulator(sample_lists=10)
>>> acc.add(["a", "b", "c"], "b", novelty=2.0)
>>> acc.add(["a", "b", "c"], "z", novelty=2.0)
>>> r = acc.result(n_items=4, item_users={"a": {1, 2}, "b": {1}, "c": {3}})
>>> r["hr@10"], round(r["ndcg@10"], 4), r["mrr@20"], r["coverage"]
(0.5, 0.3155, 0.25, 0.75)
>>> round(r["diversity"], 4)   # pairs: a-b 0.7071, a-c 0, b-c 0
0.7643
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

import numpy as np


def hit_at(items: Sequence[str], target: str, k: int = 10) -> float:
    """1.0 if ``target`` is in the first ``k`` items."""
    return 1.0 if target in items[:k] else 0.0


def ndcg_at(items: Sequence[str], target: str, k: int = 10) -> float:
    """NDCG@k with a single relevant item."""
    top = list(items[:k])
    return 1.0 / math.log2(top.index(target) + 2) if target in top else 0.0


def rr_at(items: Sequence[str], target: str, k: int = 20) -> float:
    """Reciprocal rank of ``target`` within the first ``k`` items (0 if absent)."""
    top = list(items[:k])
    return 1.0 / (top.index(target) + 1) if target in top else 0.0


def intra_list_diversity(lists: Sequence[Sequence[str]], item_users: Mapping[str, set[str]]) -> float:
    """``1 - mean pairwise user-set cosine`` over all pairs of every list (0 when no pairs)."""
    total, pairs = 0.0, 0
    cosine: dict[tuple[str, str], float] = {}  # lists share most pairs (popular items): each pair once
    empty: set[str] = set()
    for items in lists:
        for a in range(len(items)):
            ia = items[a]
            for b in range(a + 1, len(items)):
                ib = items[b]
                pairs += 1
                key = (ia, ib) if ia <= ib else (ib, ia)
                c = cosine.get(key)
                if c is None:
                    sa, sb = item_users.get(ia, empty), item_users.get(ib, empty)
                    c = len(sa & sb) / math.sqrt(len(sa) * len(sb)) if sa and sb else 0.0
                    cosine[key] = c
                total += c
    return 1.0 - total / pairs if pairs else 0.0


class RankingAccumulator:
    """Running sums of the per-event metrics plus what the replay-level metrics need."""

    def __init__(self, sample_lists: int = 2000, seed: int = 0) -> None:
        self.n = 0
        self.hr = 0.0
        self.ndcg = 0.0
        self.mrr = 0.0
        self.novelty_sum = 0.0
        self.novelty_n = 0
        self.recommended: set[str] = set()
        self.sample_lists = sample_lists
        self.samples: list[list[str]] = []
        self._rng = random.Random(seed)
        self.by_user: dict[str, list[float]] = {}
        """Per user: ``[events judged, NDCG@10 sum]`` (for a per-user bootstrap)."""
        self.by_part: dict[int, list[float]] = {}
        """Per part of the stream: ``[events judged, HR@10 sum, NDCG@10 sum, MRR@20 sum]``."""

    def add(self, items: Sequence[str], target: str, novelty: float | None = None,
            user: str | None = None, part: int | None = None) -> None:
        """Record one ranked list (best first) and the item the user chose next.

        ``user`` and ``part`` (a part of the stream, e.g. its fifth) also sum the event into
        :attr:`by_user` and :attr:`by_part`.
        """
        self.n += 1
        top = list(items[:20])
        hr = nd = rr = 0.0
        if target in top:
            pos = top.index(target)
            rr = 1.0 / (pos + 1)
            if pos < 10:
                hr = 1.0
                nd = 1.0 / math.log2(pos + 2)
        self.hr += hr
        self.ndcg += nd
        self.mrr += rr
        if user is not None:
            u = self.by_user.setdefault(user, [0.0, 0.0])
            u[0] += 1.0
            u[1] += nd
        if part is not None:
            p = self.by_part.setdefault(part, [0.0, 0.0, 0.0, 0.0])
            p[0] += 1.0
            p[1] += hr
            p[2] += nd
            p[3] += rr
        top10 = top[:10]
        self.recommended.update(top10)
        if novelty is not None and top10:
            self.novelty_sum += novelty
            self.novelty_n += 1
        # reservoir sample of lists for the diversity measure
        if len(self.samples) < self.sample_lists:
            self.samples.append(top10)
        else:
            j = self._rng.randrange(self.n)
            if j < self.sample_lists:
                self.samples[j] = top10

    def result(self, n_items: int, item_users: Mapping[str, set[str]]) -> dict[str, float]:
        n = max(self.n, 1)
        return {
            "hr@10": self.hr / n,
            "ndcg@10": self.ndcg / n,
            "mrr@20": self.mrr / n,
            "coverage": len(self.recommended) / n_items if n_items else 0.0,
            "novelty": self.novelty_sum / self.novelty_n if self.novelty_n else 0.0,
            "diversity": intra_list_diversity(self.samples, item_users),
            "evaluated": self.n,
        }


def paired_bootstrap(
    counts: Sequence[Sequence[float]],
    diffs: Sequence[Sequence[float]],
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Per-user bootstrap of a mean difference between two systems judged on the same events.

    ``counts[s][u]`` is the number of events of user ``u`` judged in replay ``s`` (one replay
    per seed) and ``diffs[s][u]`` the sum over them of (metric of system A - metric of system B).
    The statistic is the mean over replays of ``sum_u diffs / sum_u counts``; users are resampled
    with replacement (the same draw for every replay, so a user's seeds stay together). Returns
    ``(statistic, low, high)`` with the percentile interval at ``level``.

    >>> stat, lo, hi = paired_bootstrap([[1, 1, 1, 1]], [[1, 0, 1, 0]], resamples=500)
    >>> stat, 0.0 <= lo <= stat <= hi <= 1.0
    (0.5, True)
    >>> paired_bootstrap([[2, 2]], [[0.2, 0.2]])
    (0.1, 0.1, 0.1)
    """
    n = np.asarray(counts, dtype=np.float64)
    d = np.asarray(diffs, dtype=np.float64)
    if n.ndim != 2 or n.shape != d.shape or n.shape[1] == 0:
        raise ValueError(f"counts and diffs must be equal (replays, users) tables, got {n.shape} and {d.shape}")
    total = n.sum(axis=1)
    if (total <= 0).any():
        raise ValueError("every replay needs at least one judged event")
    stat = float(np.mean(d.sum(axis=1) / total))
    rng = np.random.default_rng(seed)
    users = n.shape[1]
    weights = rng.multinomial(users, np.full(users, 1.0 / users), size=resamples).astype(np.float64)
    num = weights @ d.T  # (resamples, replays)
    den = weights @ n.T
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    stats = np.nanmean(ratios, axis=1)
    stats = stats[np.isfinite(stats)]
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return stat, round(float(lo), 12), round(float(hi), 12)
