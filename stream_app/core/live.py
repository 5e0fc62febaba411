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

With an experiment (see :mod:`stream_app.core.experiments`), the same figures are also kept per
variant, and an interleaved list credits the team whose item the user took:

>>> q = LiveQuality(variant_of=lambda user: "both")
>>> q.shown("u", ["a", "b"], 1.0, teams={"a": "a", "b": "b"})
>>> q.observe(UserContext("u", last_ts=1.0), Event("e1", "u", "b", "click", 2.0))
>>> v = q.variants()["both"]
>>> v["judged"], v["hits"], v["team_b"], v["team_a"]
(1, 1, 1, 0)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from models.base import UserContext
from schemas import Event
from stream_app.core.logic import live_hit


@dataclass(slots=True)
class Tally:
    """The sums behind the live figures of one group of users (all, or one variant's)."""

    events: int = 0
    returning: int = 0
    judged: int = 0
    hits: int = 0
    ndcg: float = 0.0
    ndcg_sq: float = 0.0
    clicks: int = 0
    clicks_on_recs: int = 0
    purchases: int = 0
    purchases_of_recs: int = 0
    team_a: int = 0
    """Interleaved lists only: interactions with an item the first variant contributed."""
    team_b: int = 0
    ties: int = 0
    """Interleaved lists only: interactions with an item in neither team's share of the list."""

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class LiveQuality:
    """Running prequential figures over a bounded window of recent users' lists."""

    def __init__(self, max_users: int = 200_000, window_s: float = 1800.0, met_users: int = 50_000,
                 met_items: int = 30, variant_of: Callable[[str], str] | None = None) -> None:
        self.max_users = max_users
        self.window_s = window_s
        """A click or purchase is attributed to the lists when its item was shown this recently."""
        self.met_users, self.met_items = met_users, met_items
        """Bounds of the attribution memory: the latest users, and per user the latest items shown."""
        self._shown: OrderedDict[str, list[str]] = OrderedDict()
        self._met: OrderedDict[str, dict[str, float]] = OrderedDict()
        """Per user: item -> event time it was last shown, the most recently shown last."""
        self.total = Tally()
        self.variant_of = variant_of
        """The user's variant when an experiment runs (see :mod:`stream_app.core.experiments`)."""
        self.by_variant: dict[str, Tally] = {}
        self._teams: dict[str, Mapping[str, str]] = {}
        """Per user whose last list was interleaved: item -> the team that contributed it."""

    def shown(self, user_id: str, items: list[str], ts: float | None = None,
              teams: Mapping[str, str] | None = None, keep_teams: bool = False) -> None:
        """``items`` were pushed to the user after an event at ``ts`` (None: not for attribution).

        ``teams`` (an interleaved list) maps each item to the variant's team that contributed it;
        ``keep_teams`` keeps those of the list before (a client's impression of it).
        """
        self._shown[user_id] = items
        self._shown.move_to_end(user_id)
        if len(self._shown) > self.max_users:
            gone, _ = self._shown.popitem(last=False)
            self._teams.pop(gone, None)
        if teams is not None:
            self._teams[user_id] = teams
        elif not keep_teams and self._teams:
            self._teams.pop(user_id, None)
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
        tallies = [self.total]
        if self.variant_of is not None:
            name = self.variant_of(event.user_id)
            v = self.by_variant.get(name)
            if v is None:
                v = self.by_variant[name] = Tally()
            tallies.append(v)
        returning = before.last_ts is not None
        clicked = purchased = attributed = False
        if event.type == "click" or event.type == "purchase":
            clicked, purchased = event.type == "click", event.type == "purchase"
            attributed = self.attributed(event.user_id, event.item_id, event.ts)
        shown = self._shown.get(event.user_id)
        hit, gain = live_hit(shown, event.item_id) if shown else (0, 0.0)
        team = None
        if shown and self._teams:
            teams = self._teams.get(event.user_id)
            team = None if teams is None else teams.get(event.item_id, "")
        for t in tallies:
            t.events += 1
            t.returning += returning
            if clicked:
                t.clicks += 1
                t.clicks_on_recs += attributed
            elif purchased:
                t.purchases += 1
                t.purchases_of_recs += attributed
            if shown:
                t.judged += 1
                t.hits += hit
                t.ndcg += gain
                t.ndcg_sq += gain * gain
        if team is not None:
            v = tallies[-1]
            if team == "a":
                v.team_a += 1
            elif team == "b":
                v.team_b += 1
            else:
                v.ties += 1

    def variants(self) -> dict[str, dict[str, float]]:
        """Per variant, the sums behind its figures (see :mod:`stream_app.core.experiment_report`)."""
        return {name: t.as_dict() for name, t in self.by_variant.items()}

    def snapshot(self) -> dict[str, float]:
        """The figures and their denominators: lists judged, clicks, purchases, events (so that a
        group's figures can be merged exactly)."""
        return figures(self.total)


def figures(t: Tally) -> dict[str, float]:
    """The live figures of a tally and their denominators."""
    def ratio(a: float, b: int) -> float:
        return a / b if b else 0.0

    return {
        "judged": t.judged,
        "hr@10": ratio(t.hits, t.judged),
        "ndcg@10": ratio(t.ndcg, t.judged),
        "ctr": ratio(t.clicks_on_recs, t.clicks),
        "conversion": ratio(t.purchases_of_recs, t.purchases),
        "returning_rate": ratio(t.returning, t.events),
        "clicks": t.clicks,
        "purchases": t.purchases,
        "events": t.events,
    }
