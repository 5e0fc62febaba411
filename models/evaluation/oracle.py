"""The ceiling of a replay: a system that ranks by the stream's true next-item probabilities.

Only a stream whose law is known has one (the synthetic generator's:
:mod:`stream_app.data.synthetic_law`). :class:`Oracle` is an ordinary :class:`~models.base.Recommender`,
so the replay ranks, excludes and judges it exactly as every other system: after each event it
asks for ``k`` items leaving out what the worker leaves out, and the oracle answers the ``k``
most probable next items outside that set. No system can expect more from those lists, so each
system's share of the oracle's NDCG@10 says how much of the reachable quality it reaches.

>>> from models.base import Interaction, UserContext
>>> class Chain:            # a planted law: after item n comes item n+1, surely
...     def __init__(self): self.last = {}
...     def observe(self, ev): self.last[ev.user_id] = int(ev.item_id)
...     def probability(self, user_id, item_id):
...         return 1.0 if int(item_id) == self.last.get(user_id, -2) + 1 else 0.0
...     def most_likely_many(self, users, k, excludes):
...         return [[(str(self.last[u] + 1), 1.0)] if u in self.last else [] for u in users]
>>> oracle = Oracle(Chain())
>>> oracle.learn_one(UserContext.empty("u"), Interaction("u", "4", "view", 0.0))
>>> oracle.rank(UserContext.empty("u"), k=3), oracle.predict_one(UserContext.empty("u"), "5")
([('5', 1.0)], 1.0)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from models.base import Interaction, Ranked, Recommender, UserContext


class NextItemLaw(Protocol):
    """The true next-item probabilities of a stream, followed event by event."""

    def observe(self, event: Interaction) -> None:
        """The replay learned ``event`` (its user's law is now the one after it)."""

    def probability(self, user_id: str, item_id: str) -> float:
        """P(the user's next item is ``item_id``)."""

    def most_likely_many(self, user_ids: Sequence[str], k: int,
                         excludes: Sequence[Collection[str]]) -> list[list[tuple[str, float]]]:
        """Per user, the ``k`` most probable next items not in its exclusions, best first."""


class Oracle(Recommender):
    """Ranks by a :class:`NextItemLaw`: the best any system can expect to do on that stream."""

    name = "oracle"

    def __init__(self, law: NextItemLaw) -> None:
        self.law = law

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        self.law.observe(event)

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return self.law.probability(user.user_id, item_id)

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        return self.law.most_likely_many([user.user_id], k, [exclude])[0]

    def rank_many(self, users: Sequence[UserContext], k: int = 10,
                  excludes: Sequence[Collection[str]] | None = None) -> list[Ranked]:
        if excludes is None:
            excludes = [frozenset()] * len(users)
        return self.law.most_likely_many([u.user_id for u in users], k, excludes)
