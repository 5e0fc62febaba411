"""A bounded item catalogue: past its capacity, the coldest items are forgotten, a step at a time.

A stream of ever new item ids (a marketplace's listings, a news site's articles, or garbage) would
otherwise grow the online models without end: every item seen keeps a popularity figure, a
co-occurrence row and a row of the candidate index.  :class:`ItemCapacity` keeps the items held at
most ``max_items`` (plus what arrives during one round): once more are held, a round forgets the
coldest ``share`` of the capacity, by decayed popularity (the order that never depends on the time
it is read), sparing the popularity leaderboard and any protected item (the deep model's pool).

A round is done in steps of bounded work, one per :meth:`ItemCapacity.step` call, so a worker
calls it between batches without holding its event loop: first the victims are dropped from the
retrievers, a chunk per step (:meth:`CandidateIndex.forget`), then the neighbor rows of other items
that still name them are cleaned, a slice of rows per step (:meth:`CandidateIndex.sweep`), after
which their ids are given to new items.  A forgotten item that comes back is a new item.

>>> from models.base import Interaction, UserContext
>>> from models.rerank.online import OnlineRanker
>>> from models.retrieval.popularity import PopularityRecommender
>>> m = OnlineRanker(PopularityRecommender(top_n=20))
>>> m.set_max_items(100)
>>> u = UserContext.empty("u")
>>> for t in range(1000):  # every event a new item
...     ev = Interaction("u", f"i{t}", "click", float(t))
...     m.learn_one(u, ev)
...     u = u.after(ev)
...     while m.upkeep():
...         pass
>>> len(m.index.ids) <= 100, len(m.popularity.counts) <= 100, len(m.cooccurrence.neighbors) <= 100
(True, True, True)
>>> "i999" in m.index.ids, "i0" in m.index.ids  # the newest are kept, the coldest forgotten
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from models.retrieval.candidates import CandidateIndex
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender


class ItemCapacity:
    """Keeps a :class:`CandidateIndex` and its retrievers at most ``max_items`` items.

    ``share`` of the capacity is forgotten per round; ``chunk`` items are dropped per step and
    ``rows`` index rows checked per step of the sweep.
    """

    def __init__(self, max_items: int, share: float = 0.05, chunk: int = 4096, rows: int = 32768) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items!r}")
        if not 0.0 < share < 1.0:
            raise ValueError(f"share must be in (0, 1), got {share!r}")
        self.max_items = int(max_items)
        self.share = float(share)
        self.chunk = max(1, int(chunk))
        self.rows = max(1, int(rows))
        self.forgotten = 0
        """Items forgotten so far."""
        self.rounds = 0
        self._queue: NDArray[np.int64] | None = None
        self._threshold = -np.inf
        self._due_at = self.max_items
        """Items held past which the next round starts (raised when every item was protected)."""

    def pending(self, index: CandidateIndex) -> bool:
        """Whether a round is under way or due."""
        return self._queue is not None or index.sweeping or len(index.ids) > self._due_at

    def step(self, index: CandidateIndex, popularity: PopularityRecommender, cooccurrence: CooccurrenceRecommender,
             protected: Callable[[], NDArray[np.int64]]) -> bool:
        """One bounded step of the current round (starting one if due); True while work remains."""
        if self._queue is not None:
            self._forget_chunk(index, popularity, cooccurrence)
        elif index.sweeping:
            index.sweep(self.rows)
        elif len(index.ids) > self._due_at:
            self._choose(index, protected())
        return self.pending(index)

    def _choose(self, index: CandidateIndex, protected: NDArray[np.int64]) -> None:
        hi = len(index.names)
        score = index.pop_log_scores[:hi].copy()
        score[~index.alive[:hi]] = np.inf
        protected = protected[(protected >= 0) & (protected < hi)]
        score[protected] = np.inf
        target = self.max_items - max(1, int(self.max_items * self.share))
        n = min(len(index.ids) - target, int(np.count_nonzero(score < np.inf)))
        if n <= 0:  # all protected: try again once a chunk more is held
            self._due_at = len(index.ids) + self.chunk
            return
        self._due_at = self.max_items
        victims = np.argpartition(score, n - 1)[:n] if n < hi else np.arange(hi)
        victims = victims[score[victims] < np.inf]
        self._threshold = float(score[victims].max()) if len(victims) else -np.inf
        self._queue = victims.astype(np.int64)
        self.rounds += 1

    def _forget_chunk(self, index: CandidateIndex, popularity: PopularityRecommender,
                      cooccurrence: CooccurrenceRecommender) -> None:
        queue = self._queue
        assert queue is not None
        take, rest = queue[: self.chunk], queue[self.chunk :]
        self._queue = rest if len(rest) else None
        # a victim seen again since it was chosen is no longer among the coldest
        take = take[index.alive[take] & (index.pop_log_scores[take] <= self._threshold)]
        if not len(take):
            return
        names = index.forget(take.tolist())
        popularity.forget(names)
        cooccurrence.forget(names)
        self.forgotten += len(names)
