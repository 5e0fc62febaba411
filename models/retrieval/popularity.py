"""Time-decayed popularity: the cold-start ranker and a candidate source for the others.

Each event adds ``EVENT_WEIGHTS[type]`` to its item's score, and scores halve every
``half_life`` seconds.  Decay is lazy: an item stores ``log(sum_j w_j * exp(lam * t_j))``
with ``lam = ln 2 / half_life``; the decayed score at time ``t`` is ``exp(stored - lam * t)``.
Adding an event is one ``logaddexp`` (O(1), no sweep over the catalog), and because every
item decays by the same factor, the *order* of items never depends on the current time.
Stored values only grow, so the exact top ``top_n`` items are kept in a small dict updated
per event; :meth:`PopularityRecommender.rank` sorts only that set (microseconds even for
catalogs of millions of items).

>>> from models.base import Interaction, UserContext
>>> pop = PopularityRecommender(half_life=3600.0)
>>> u = UserContext.empty("u-1")
>>> for item, ts in [("a", 0.0), ("a", 10.0), ("b", 20.0), ("c", 7200.0)]:
...     pop.learn_one(u, Interaction("u-1", item, "click", ts))
>>> [item for item, _ in pop.rank(u, k=3)]   # "a" (2 events, 2 h old) = 0.5, "c" (fresh) = 1.0
['c', 'a', 'b']
>>> round(pop.predict_one(u, "a"), 3)
0.5
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Collection, Iterable
from typing import Any

from models.base import Interaction, Ranked, Recommender, UserContext, event_weight
from models.checkpoint import dump, load


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


class PopularityRecommender(Recommender):
    """Top items by exponentially time-decayed, event-weighted counts.

    ``half_life`` is in seconds (``None``: no decay, plain weighted counts).  ``top_n`` is
    the size of the exactly maintained leaderboard that :meth:`rank` serves from; a request
    that excludes too much of it falls back to a full scan.

    >>> pop = PopularityRecommender(half_life=None)
    >>> u = UserContext.empty("u")
    >>> for item, kind in [("x", "view"), ("y", "purchase")]:
    ...     pop.learn_one(u, Interaction("u", item, kind, 1.0))
    >>> pop.rank(u, k=5, exclude={"y"})
    [('x', 1.0)]
    """

    name = "popularity"

    def __init__(self, half_life: float | None = 7 * 24 * 3600.0, top_n: int = 500) -> None:
        if half_life is not None and not half_life > 0:
            raise ValueError(f"half_life must be > 0 seconds or None, got {half_life!r}")
        if top_n < 1:
            raise ValueError(f"top_n must be >= 1, got {top_n!r}")
        self.half_life = half_life
        self.top_n = int(top_n)
        self._lam = 0.0 if half_life is None else math.log(2.0) / half_life
        self.log_scores: dict[str, float] = {}
        self.counts: dict[str, float] = {}
        """All-time weighted counts per item (no decay)."""
        self.n_events = 0
        self.last_ts: float | None = None
        self._top: dict[str, float] = {}
        self._order: list[tuple[float, str]] = []
        self.top_version = 0
        """Changes whenever the leaderboard's members or order change."""
        self._sorted: list[tuple[str, float]] | None = None
        self.max_count = 0.0

    # -- learning -------------------------------------------------------------------------
    def learn_one(self, user: UserContext, event: Interaction) -> None:
        w = event_weight(event.type)
        item = event.item_id
        contrib = math.log(w) + self._lam * event.ts
        old = self.log_scores.get(item)
        new = contrib if old is None else _logaddexp(old, contrib)
        self.log_scores[item] = new
        c = self.counts.get(item, 0.0) + w
        self.counts[item] = c
        if c > self.max_count:
            self.max_count = c
        self.n_events += 1
        if self.last_ts is None or event.ts > self.last_ts:
            self.last_ts = event.ts
        self._update_top(item, new)

    def _update_top(self, item: str, value: float) -> None:
        # ``_order`` holds (-log score, item) of the leaderboard, sorted: O(log n) search, one memmove
        top, order = self._top, self._order
        old = top.get(item)
        if old is not None:
            if old == value:
                return
            del order[bisect_left(order, (-old, item))]
        elif len(top) >= self.top_n:
            if value <= -order[-1][0]:
                return
            del top[order.pop()[1]]
        top[item] = value
        insort(order, (-value, item))
        self._sorted = None
        self.top_version += 1

    # -- scoring --------------------------------------------------------------------------
    @property
    def decay_rate(self) -> float:
        """``ln 2 / half_life`` per second (0 without decay): a stored log score ``s`` is worth
        ``exp(s - decay_rate * last_ts)`` at the time of the latest event."""
        return self._lam

    def _decayed(self, log_score: float) -> float:
        if self.last_ts is None:
            return 0.0
        return math.exp(log_score - self._lam * self.last_ts)

    def score(self, item_id: str) -> float:
        """Decayed score of one item at the time of the latest event (0 if never seen)."""
        ls = self.log_scores.get(item_id)
        return 0.0 if ls is None else self._decayed(ls)

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return self.score(item_id)

    def leaderboard(self) -> list[tuple[str, float]]:
        """The maintained top items with decayed scores, best first (cached between events)."""
        if self._sorted is None:
            self._sorted = [(item, self._decayed(-neg)) for neg, item in self._order]
        return self._sorted

    def top_items(self, n: int) -> list[str]:
        """The best ``n`` leaderboard items, best first (no scores computed)."""
        return [item for _, item in self._order[:n]]

    def top(self, n: int) -> list[tuple[str, float]]:
        """The best ``n`` leaderboard items with decayed scores (cheaper than the whole leaderboard)."""
        return [(item, self._decayed(-neg)) for neg, item in self._order[:n]]

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        if k <= 0:
            return []
        out: Ranked = []
        for item, s in self.leaderboard():
            if item not in exclude:
                out.append((item, s))
                if len(out) == k:
                    return out
        if len(self._top) < len(self.log_scores):  # leaderboard exhausted by exclusions
            rest = sorted(
                ((-ls, item) for item, ls in self.log_scores.items() if item not in exclude)
            )[:k]
            out = [(item, self._decayed(-neg)) for neg, item in rest]
        return out

    @property
    def version(self) -> int:
        return self.n_events

    # -- checkpoint -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "half_life": self.half_life,
            "top_n": self.top_n,
            "log_scores": self.log_scores,
            "counts": self.counts,
            "n_events": self.n_events,
            "last_ts": self.last_ts,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> PopularityRecommender:
        m = cls(half_life=st["half_life"], top_n=st["top_n"])
        m.log_scores = {str(k): float(v) for k, v in st["log_scores"].items()}
        m.counts = {str(k): float(v) for k, v in st["counts"].items()}
        m.max_count = max(m.counts.values(), default=0.0)
        m.n_events = int(st["n_events"])
        m.last_ts = st["last_ts"]
        m.rebuild_leaderboard()
        return m

    def forget(self, items: Iterable[str]) -> int:
        """Drop everything known about ``items`` (an item catalogue at its capacity makes room);
        returns how many were known. An item forgotten and seen again starts from nothing.

        >>> pop = PopularityRecommender(half_life=None, top_n=2)
        >>> u = UserContext.empty("u")
        >>> for item in "aab":
        ...     pop.learn_one(u, Interaction("u", item, "click", 1.0))
        >>> pop.forget(["a", "z"]), pop.top_items(2), pop.score("a")
        (1, ['b'], 0.0)
        """
        n = 0
        in_top = False
        for item in items:
            if self.log_scores.pop(item, None) is not None:
                n += 1
            self.counts.pop(item, None)
            if item in self._top:
                in_top = True
        if in_top:  # rare: forgetting is meant for the coldest items
            self.rebuild_leaderboard()
            self.top_version += 1
        return n

    def rebuild_leaderboard(self) -> None:
        """Recompute the leaderboard from :attr:`log_scores` (after they were set wholesale)."""
        self._top = dict(heapq.nlargest(self.top_n, self.log_scores.items(), key=lambda kv: kv[1]))
        self._order = sorted((-ls, item) for item, ls in self._top.items())
        self._sorted = None

    def to_bytes(self) -> bytes:
        return dump(self.name, self.state())

    @classmethod
    def from_bytes(cls, data: bytes) -> PopularityRecommender:
        return cls.from_state(load(data, cls.name))
