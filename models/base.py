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
default loops over ``rank``. A test suite (``tests/unit/test_models_contract.py``) runs over every
model registered in :data:`models.catalog.MODELS`.

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
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

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

    @classmethod
    def empty(cls, user_id: str) -> UserContext:
        return cls(user_id=user_id)

    def after(self, event: Interaction, max_recent: int = 50) -> UserContext:
        """The context once ``event`` is applied (pure; used by evaluation and tests)."""
        recent = (self.recent_items + (event.item_id,))[-max_recent:]
        purchased = self.purchased | {event.item_id} if event.type == "purchase" else self.purchased
        counts = dict(self.counts)
        counts[event.type] = counts.get(event.type, 0) + 1
        return UserContext(self.user_id, recent, purchased, counts, self.shown, event.ts)


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
