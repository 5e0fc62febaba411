"""The one ranking protocol shared by every streamrec model.

A model sees two plain records:

* :class:`Interaction` - one event (user, item, type, time);
* :class:`UserContext` - what is known about the user at that moment: the recent item
  sequence (oldest first), purchased items, counts per event type, and the list last shown.

and answers three calls, named as in River:

* ``learn_one(user, event)`` - learn from one event; ``user`` is the context *before* the event;
* ``predict_one(user, item_id)`` - a relevance score for one item (higher is better);
* ``rank(user, k, exclude)`` - the top ``k`` items for the user (``user`` is the context *after*
  the latest event), best first, as ``(item_id, score)`` pairs, never an item in ``exclude``.

``rank_many`` is the batched form (one forward pass for many users in the deep model); the
default loops over ``rank``. The checks of :mod:`models.checks` run over every model registered
in :data:`models.catalog.MODELS`, in the variants each declares with :meth:`Recommender.check_params`.

>>> class MostRecent(Recommender):
...     name = "recent"
...     def __init__(self):
...         self.seen = []
...     def learn_one(self, user, event):
...         self.seen.append(event.item_id)
...     def predict_one(self, user, item_id):
...         return float(self.seen[::-1].index(item_id) * -1) if item_id in self.seen else float("-inf")
...     def rank(self, user, k=10, exclude=frozenset()):
...         out = []
...         for item in reversed(self.seen):
...             if item not in exclude and item not in dict(out):
...                 out.append((item, self.predict_one(user, item)))
...         return out[:k]
>>> m = MostRecent()
>>> u = UserContext.empty("u-1")
>>> for i, item in enumerate(["a", "b", "c"]):
...     m.learn_one(u, Interaction("u-1", item, "click", float(i)))
>>> [item for item, _ in m.rank(u, k=2, exclude={"c"})]
['b', 'a']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
"""How strongly each event type signals interest; shared by the models that weight events."""


def event_weight(event_type: str) -> float:
    """The weight of an event type; a clear error for a type outside the contract."""
    try:
        return EVENT_WEIGHTS[event_type]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}; expected one of {sorted(EVENT_WEIGHTS)}") from None


@dataclass(frozen=True, slots=True)
class Interaction:
    """One event as the models see it."""

    user_id: str
    item_id: str
    type: str
    ts: float


EVENT_TYPES: tuple[str, ...] = tuple(EVENT_WEIGHTS)
"""The event types in their canonical order (that of per-type counts kept as a sequence)."""
_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}

RECENT_MAX = 50
"""Recent items kept per user by default (the worker's ``recent_max``)."""
PURCHASED_MAX = 200
"""Purchased items remembered per user by default (the worker's ``purchased_max``)."""


class History(NamedTuple):
    """What a user's events leave behind, in plain containers (oldest first)."""

    recent: Sequence[str]
    """Recent items, at most ``recent_max``."""
    purchased: Sequence[str]
    """Distinct purchased items, at most ``purchased_max``."""
    counts: Sequence[int]
    """Events per type, in the order of :data:`EVENT_TYPES`."""
    first_ts: float | None = None
    last_ts: float | None = None


def apply_interaction(
    history: History,
    item_id: str,
    event_type: str,
    ts: float,
    recent_max: int = RECENT_MAX,
    purchased_max: int = PURCHASED_MAX,
) -> History:
    """The history once one event is applied: the one state transition of a user.

    Pure: the inputs are not changed; an unchanged ``purchased`` is returned as the same object.
    Used by the worker's stored user state and by :meth:`UserContext.after`.

    >>> h = apply_interaction(History([], [], [0, 0, 0, 0]), "a", "purchase", 5.0)
    >>> h
    History(recent=['a'], purchased=['a'], counts=[0, 0, 0, 1], first_ts=5.0, last_ts=5.0)
    >>> apply_interaction(h, "b", "view", 6.0, recent_max=1)
    History(recent=['b'], purchased=['a'], counts=[1, 0, 0, 1], first_ts=5.0, last_ts=6.0)
    """
    try:
        t = _TYPE_INDEX[event_type]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}; expected one of {sorted(EVENT_WEIGHTS)}") from None
    counts = list(history.counts)
    counts[t] += 1
    recent = [*history.recent[-(recent_max - 1):], item_id] if recent_max > 1 else [item_id]
    purchased = history.purchased
    if event_type == "purchase" and item_id not in purchased:
        purchased = [*purchased, item_id][-purchased_max:]
    first_ts = ts if history.first_ts is None else history.first_ts
    return History(recent, purchased, counts, first_ts, ts)


@dataclass(frozen=True, slots=True)
class UserContext:
    """What is known of a user at one moment (a snapshot of the user's state)."""

    user_id: str
    recent_items: tuple[str, ...] = ()
    """Recently interacted items, oldest first, bounded in length."""
    purchased: frozenset[str] = frozenset()
    counts: dict[str, int] = field(default_factory=dict)
    """Events per type: view, click, add_to_cart, purchase."""
    shown: tuple[str, ...] = ()
    """The list last recommended to the user (the impression the next event labels)."""
    last_ts: float | None = None
    """Time of the user's latest event, or None for a new user."""
    purchase_order: tuple[str, ...] = ()
    """``purchased`` oldest first (which the bound drops first); when it does not match
    ``purchased``, :meth:`after` takes the purchased items in sorted order."""
    hidden: frozenset[str] = frozenset()
    """Items the user rejected (disliked or hid): never recommended to the user again."""

    @classmethod
    def empty(cls, user_id: str) -> UserContext:
        return cls(user_id=user_id)

    def after(self, event: Interaction, max_recent: int = RECENT_MAX,
              max_purchased: int = PURCHASED_MAX) -> UserContext:
        """The context once ``event`` is applied (pure), by :func:`apply_interaction`.

        >>> u = UserContext.empty("u").after(Interaction("u", "a", "purchase", 1.0))
        >>> u.after(Interaction("u", "b", "click", 2.0), max_recent=1).recent_items, sorted(u.purchased)
        (('b',), ['a'])
        """
        order = self.purchase_order
        if len(order) != len(self.purchased):
            order = tuple(sorted(self.purchased))
        counts = self.counts
        h = apply_interaction(
            History(self.recent_items, order, [counts.get(t, 0) for t in EVENT_TYPES], None, self.last_ts),
            event.item_id, event.type, event.ts, max_recent, max_purchased,
        )
        if h.purchased is order:
            purchased = self.purchased
        else:
            order = tuple(h.purchased)
            purchased = frozenset(order)
        return UserContext(self.user_id, tuple(h.recent), purchased, dict(zip(EVENT_TYPES, h.counts)), self.shown,
                           event.ts, order, self.hidden)


Ranked = list[tuple[str, float]]


class Recommender(ABC):
    """Base class of every ranking model."""

    name: str = "model"

    @abstractmethod
    def learn_one(self, user: UserContext, event: Interaction) -> None:
        """Learn from one event; ``user`` is the context before it."""

    @abstractmethod
    def predict_one(self, user: UserContext, item_id: str) -> float:
        """Relevance of one item for the user (higher is better)."""

    @abstractmethod
    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        """Top ``k`` items, best first, with no duplicates and none from ``exclude``."""

    def rank_many(
        self,
        users: Sequence[UserContext],
        k: int = 10,
        excludes: Sequence[Collection[str]] | None = None,
    ) -> list[Ranked]:
        """Rank for many users at once; models with batched scoring override this."""
        if excludes is None:
            excludes = [frozenset()] * len(users)
        return [self.rank(u, k, ex) for u, ex in zip(users, excludes)]

    @property
    def version(self) -> str | int | None:
        """Identifies the model's current parameters (an artifact version, or events learned)."""
        return None

    @classmethod
    def check_params(cls) -> Iterator[dict[str, Any]]:
        """Constructor arguments of the variants :mod:`models.checks` builds and checks (one dict each)."""
        yield {}
