"""Live quality, measured prequentially: when a user's next event arrives, was its item in the
list we last showed them?

>>> from models.base import UserContext
>>> from schemas import Event
>>> q = LiveQuality()
>>> q.shown("u", ["a", "b"])
>>> q.observe(UserContext("u", last_ts=1.0), Event("e", "u", "b", "click", 2.0))
>>> q.snapshot()["hr@10"], q.snapshot()["ctr"]
(1.0, 1.0)
"""

from __future__ import annotations

from collections import OrderedDict

from models.base import UserContext
from schemas import Event
from stream_app.core.logic import live_hit


class LiveQuality:
    """Running prequential figures over a bounded window of recent users' lists."""

    def __init__(self, max_users: int = 200_000) -> None:
        self.max_users = max_users
        self._shown: OrderedDict[str, list[str]] = OrderedDict()
        self.judged = 0
        self.hits = 0
        self.ndcg = 0.0
        self.clicks = 0
        self.clicks_on_recs = 0
        self.purchases = 0
        self.purchases_of_recs = 0
        self.events = 0
        self.returning = 0

    def shown(self, user_id: str, items: list[str]) -> None:
        self._shown[user_id] = items
        self._shown.move_to_end(user_id)
        if len(self._shown) > self.max_users:
            self._shown.popitem(last=False)

    def last_shown(self, user_id: str) -> list[str]:
        return self._shown.get(user_id, [])

    def observe(self, before: UserContext, event: Event) -> None:
        self.events += 1
        if before.last_ts is not None:
            self.returning += 1
        shown = self._shown.get(event.user_id)
        if not shown:
            return
        hit, gain = live_hit(shown, event.item_id)
        self.judged += 1
        self.hits += hit
        self.ndcg += gain
        if event.type == "click":
            self.clicks += 1
            self.clicks_on_recs += hit
        elif event.type == "purchase":
            self.purchases += 1
            self.purchases_of_recs += hit

    def snapshot(self) -> dict[str, float]:
        def ratio(a: float, b: int) -> float:
            return a / b if b else 0.0

        return {
            "judged": self.judged,
            "hr@10": ratio(self.hits, self.judged),
            "ndcg@10": ratio(self.ndcg, self.judged),
            "ctr": ratio(self.clicks_on_recs, self.clicks),
            "conversion": ratio(self.purchases_of_recs, self.purchases),
            "returning_rate": ratio(self.returning, self.events),
        }
