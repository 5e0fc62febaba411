"""Item-to-item co-occurrence from users' recent sequences ("people who did a next did b").

When a user with recent items ``r1..rn`` (oldest first) interacts with ``x``, the model adds
``EVENT_WEIGHTS[type] * position_decay ** j`` to the transition ``r_{n-j} -> x`` for the last
``window`` items (``j = 0`` for the most recent).  Each item keeps a bounded neighbor dict:
once it holds more than ``2 * max_neighbors`` entries it is pruned to the ``max_neighbors``
strongest (amortized O(1) per event).

To rank, the user's last ``context`` items vote for their neighbors with the smoothed
transition probability ``w(a -> b) / (total(a) + smoothing)`` times ``recency_decay ** j``.
Items without a vote come from a :class:`~models.retrieval.popularity.PopularityRecommender` fallback
(cold start), scored ``-1 / (1 + popularity)`` so they always rank below voted items.

>>> from models.base import Interaction, UserContext
>>> m = CooccurrenceRecommender()
>>> for uid, seq in [("u1", "abc"), ("u2", "abd"), ("u3", "ab")]:
...     u = UserContext.empty(uid)
...     for t, item in enumerate(seq):
...         m.learn_one(u, Interaction(uid, item, "click", float(t)))
...         u = u.after(Interaction(uid, item, "click", float(t)))
>>> [item for item, _ in m.rank(UserContext("new", recent_items=("a",)), k=3)]
['b', 'c', 'd']
>>> [(i, round(s, 3)) for i, s in m.rank(UserContext.empty("cold"), k=1)]  # popularity fallback
[('b', -0.25)]
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from models.base import Interaction, Ranked, Recommender, UserContext, event_weight
from models.checkpoint import dump, load
from models.retrieval.popularity import PopularityRecommender


class CooccurrenceRecommender(Recommender):
    """Sequential item-to-item co-occurrence with a popularity fallback.

    ``fallback`` is the popularity model used for cold users; it is learned by this model's
    :meth:`learn_one` unless ``learn_fallback`` is false (when another owner trains it).
    """

    name = "cooccurrence"

    def __init__(
        self,
        window: int = 5,
        position_decay: float = 0.7,
        max_neighbors: int = 50,
        context: int = 8,
        recency_decay: float = 0.8,
        smoothing: float = 2.0,
        fallback: PopularityRecommender | None = None,
        learn_fallback: bool = True,
    ) -> None:
        for label, value in [("window", window), ("max_neighbors", max_neighbors), ("context", context)]:
            if int(value) < 1:
                raise ValueError(f"{label} must be >= 1, got {value!r}")
        for label, decay in [("position_decay", position_decay), ("recency_decay", recency_decay)]:
            if not 0.0 < decay <= 1.0:
                raise ValueError(f"{label} must be in (0, 1], got {decay!r}")
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing!r}")
        self.window = int(window)
        self.position_decay = float(position_decay)
        self.max_neighbors = int(max_neighbors)
        self.context = int(context)
        self.recency_decay = float(recency_decay)
        self.smoothing = float(smoothing)
        self.fallback = fallback if fallback is not None else PopularityRecommender()
        self.learn_fallback = learn_fallback
        self.neighbors: dict[str, dict[str, float]] = {}
        self.totals: dict[str, float] = {}
        self.n_events = 0

    # -- learning -------------------------------------------------------------------------
    def learn_one(self, user: UserContext, event: Interaction) -> None:
        w = event_weight(event.type)
        x = event.item_id
        recent = user.recent_items
        nbs, totals, cap = self.neighbors, self.totals, 2 * self.max_neighbors
        for j in range(1, min(self.window, len(recent)) + 1):
            r = recent[-j]
            if r == x:
                continue
            d = nbs.get(r)
            if d is None:
                d = nbs[r] = {}
            d[x] = d.get(x, 0.0) + w
            totals[r] = totals.get(r, 0.0) + w
            if len(d) > cap:
                self._prune(r, d)
            w *= self.position_decay
        self.n_events += 1
        if self.learn_fallback:
            self.fallback.learn_one(user, event)

    def _prune(self, item: str, d: dict[str, float]) -> None:
        keep = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[: self.max_neighbors]
        self.neighbors[item] = dict(keep)

    def forget(self, items: Iterable[str]) -> None:
        """Drop the neighbor rows and totals of ``items``. Other items' rows may still name them:
        :meth:`drop_neighbors` removes those (the candidate index finds them, see
        :meth:`models.retrieval.candidates.CandidateIndex.forget`)."""
        nbs, totals = self.neighbors, self.totals
        for item in items:
            nbs.pop(item, None)
            totals.pop(item, None)

    def drop_neighbors(self, item: str, gone: Iterable[str]) -> None:
        """Remove ``gone`` from ``item``'s neighbor row (its total keeps what they added, as a prune does)."""
        d = self.neighbors.get(item)
        if d is not None:
            for b in gone:
                d.pop(b, None)

    # -- scoring --------------------------------------------------------------------------
    def neighbor_scores(self, user: UserContext) -> dict[str, float]:
        """Votes of the user's recent items for their neighbors (no fallback), item -> score."""
        acc: dict[str, float] = {}
        rw = 1.0
        nbs, totals, sm = self.neighbors, self.totals, self.smoothing
        for r in reversed(user.recent_items[-self.context :]):
            d = nbs.get(r)
            if d:
                f = rw / (totals[r] + sm)
                for b, w in d.items():
                    acc[b] = acc.get(b, 0.0) + f * w
            rw *= self.recency_decay
        return acc

    def last_item_scores(self, user: UserContext) -> dict[str, float]:
        """Smoothed transition probabilities from the user's latest item only."""
        if not user.recent_items:
            return {}
        r = user.recent_items[-1]
        d = self.neighbors.get(r)
        if not d:
            return {}
        f = 1.0 / (self.totals[r] + self.smoothing)
        return {b: f * w for b, w in d.items()}

    def _vote(self, user: UserContext, item_id: str) -> float:
        s, rw = 0.0, 1.0
        for r in reversed(user.recent_items[-self.context :]):
            d = self.neighbors.get(r)
            if d:
                w = d.get(item_id)
                if w:
                    s += rw * w / (self.totals[r] + self.smoothing)
            rw *= self.recency_decay
        return s

    def predict_one(self, user: UserContext, item_id: str) -> float:
        s = self._vote(user, item_id)
        return s if s > 0 else -1.0 / (1.0 + self.fallback.score(item_id))

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        if k <= 0:
            return []
        acc = self.neighbor_scores(user)
        voted = sorted(((-s, b) for b, s in acc.items() if b not in exclude))[:k]
        out: Ranked = [(b, -neg) for neg, b in voted]
        if len(out) < k:
            taken = set(acc) | set(exclude)
            for item, s in self.fallback.rank(user, k + len(acc), exclude):
                if item not in taken:
                    out.append((item, -1.0 / (1.0 + s)))
                    if len(out) == k:
                        break
        return out

    @property
    def version(self) -> int:
        return self.n_events

    # -- checkpoint -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "params": {
                "window": self.window,
                "position_decay": self.position_decay,
                "max_neighbors": self.max_neighbors,
                "context": self.context,
                "recency_decay": self.recency_decay,
                "smoothing": self.smoothing,
                "learn_fallback": self.learn_fallback,
            },
            "neighbors": self.neighbors,
            "totals": self.totals,
            "n_events": self.n_events,
            "fallback": self.fallback.state(),
        }

    @classmethod
    def from_state(cls, st: dict[str, Any], fallback: PopularityRecommender | None = None) -> CooccurrenceRecommender:
        fb = fallback if fallback is not None else PopularityRecommender.from_state(st["fallback"])
        m = cls(fallback=fb, **st["params"])
        m.neighbors = {str(a): {str(b): float(w) for b, w in d.items()} for a, d in st["neighbors"].items()}
        m.totals = {str(a): float(t) for a, t in st["totals"].items()}
        m.n_events = int(st["n_events"])
        return m

    def to_bytes(self) -> bytes:
        return dump(self.name, self.state())

    @classmethod
    def from_bytes(cls, data: bytes) -> CooccurrenceRecommender:
        return cls.from_state(load(data, cls.name))
