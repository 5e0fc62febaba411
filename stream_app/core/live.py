"""Live quality of the lists a worker pushes.

* **HR@10 and NDCG@10**, prequential: when a user's next event arrives, was its item in the list
  last pushed to the user, and where?
* **Click-through and conversion**, attributed: a click (a purchase) counts for the lists when
  its item was in a list pushed to the user within the attribution window before it (by event
  time). On a funnel (view, then click, then purchase of the same item) the list pushed after the
  view leaves the viewed item out, so judging a click by the last list alone would credit the
  lists with almost nothing; the list where the user met the item is the one that earned it.

>>> from models.base import UserContext
>>> from schemas import Event
>>> q = LiveQuality(window_s=600)
>>> q.shown("u", ["a", "b"], ts=1.0)
>>> q.observe(UserContext("u", last_ts=1.0), Event("e1", "u", "b", "view", 2.0))
>>> q.shown("u", ["a", "c"], ts=2.0)          # the list after the view leaves b out
>>> q.observe(UserContext("u", last_ts=2.0), Event("e2", "u", "b", "click", 3.0))
>>> q.snapshot()["hr@10"], q.snapshot()["ctr"]  # the click is not in the last list, but b was met
(0.5, 1.0)
>>> q.observe(UserContext("u", last_ts=3.0), Event("e3", "u", "b", "purchase", 900.0))
>>> q.snapshot()["conversion"]                 # bought outside the window: not the lists' doing
0.0
"""

from __future__ import annotations

from collections import OrderedDict

from models.base import UserContext
from schemas import Event
from stream_app.core.logic import live_hit


class LiveQuality:
    """Running prequential figures over a bounded window of recent users' lists."""

    def __init__(self, max_users: int = 200_000, window_s: float = 1800.0, met_users: int = 50_000,
                 met_items: int = 30) -> None:
        self.max_users = max_users
        self.window_s = window_s
        """A click or purchase is attributed to the lists when its item was shown this recently."""
        self.met_users, self.met_items = met_users, met_items
        """Bounds of the attribution memory: the latest users, and per user the latest items shown."""
        self._shown: OrderedDict[str, list[str]] = OrderedDict()
        self._met: OrderedDict[str, dict[str, float]] = OrderedDict()
        """Per user: item -> event time it was last shown, the most recently shown last."""
        self.judged = 0
        self.hits = 0
        self.ndcg = 0.0
        self.clicks = 0
        self.clicks_on_recs = 0
        self.purchases = 0
        self.purchases_of_recs = 0
        self.events = 0
        self.returning = 0

    def shown(self, user_id: str, items: list[str], ts: float | None = None) -> None:
        """``items`` were pushed to the user after an event at ``ts`` (None: not for attribution)."""
        self._shown[user_id] = items
        self._shown.move_to_end(user_id)
        if len(self._shown) > self.max_users:
            self._shown.popitem(last=False)
        if ts is None or self.window_s <= 0:
            return
        met = self._met.get(user_id)
        if met is None:
            met = self._met[user_id] = {}
            if len(self._met) > self.met_users:
                self._met.popitem(last=False)
        else:
            self._met.move_to_end(user_id)
        for item in items[:10]:
            met.pop(item, None)
            met[item] = ts
        while len(met) > self.met_items:
            del met[next(iter(met))]

    def attributed(self, user_id: str, item_id: str, ts: float) -> bool:
        """Whether ``item_id`` was in a list pushed to the user within the window before ``ts``."""
        met = self._met.get(user_id)
        at = met.get(item_id) if met is not None else None
        return at is not None and ts - at <= self.window_s

    def last_shown(self, user_id: str) -> list[str]:
        return self._shown.get(user_id, [])

    def observe(self, before: UserContext, event: Event) -> None:
        self.events += 1
        if before.last_ts is not None:
            self.returning += 1
        if event.type == "click":
            self.clicks += 1
            self.clicks_on_recs += self.attributed(event.user_id, event.item_id, event.ts)
        elif event.type == "purchase":
            self.purchases += 1
            self.purchases_of_recs += self.attributed(event.user_id, event.item_id, event.ts)
        shown = self._shown.get(event.user_id)
        if not shown:
            return
        hit, gain = live_hit(shown, event.item_id)
        self.judged += 1
        self.hits += hit
        self.ndcg += gain

    def snapshot(self) -> dict[str, float]:
        """The figures and their denominators: lists judged, clicks, purchases, events (so that a
        group's figures can be merged exactly)."""
        def ratio(a: float, b: int) -> float:
            return a / b if b else 0.0

        return {
            "judged": self.judged,
            "hr@10": ratio(self.hits, self.judged),
            "ndcg@10": ratio(self.ndcg, self.judged),
            "ctr": ratio(self.clicks_on_recs, self.clicks),
            "conversion": ratio(self.purchases_of_recs, self.purchases),
            "returning_rate": ratio(self.returning, self.events),
            "clicks": self.clicks,
            "purchases": self.purchases,
            "events": self.events,
        }
