"""Per-user state and the pure function that applies one event to it.

State is stored in the ``user_state`` table (RocksDB + changelog) as compact msgpack. Applying an
event is idempotent: each state remembers the offset of the last event applied to it, and a user's
events always arrive on one partition in offset order, so an event replayed after a crash
(``offset <= state.offset``) leaves the state unchanged.

>>> from schemas import Event
>>> ev = Event("e-1", "u-1", "i-1", "purchase", 10.0)
>>> s, applied = apply_event(UserState(), ev, offset=7)
>>> applied, s.counts, s.recent, s.purchased, s.offset
(True, [0, 0, 0, 1], ['i-1'], ['i-1'], 7)
>>> apply_event(s, ev, offset=7)[1]   # the same record again: nothing changes
False
>>> s, _ = apply_event(s, Event("e-2", "u-1", "i-2", "hide", 11.0), offset=8)
>>> s.hidden, s.counts, s.offset           # feedback is not an interaction: the counts stay
(['i-2'], [0, 0, 0, 1], 8)
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from models.base import EVENT_TYPES as MODEL_EVENT_TYPES
from models.base import PURCHASED_MAX, RECENT_MAX, History, apply_interaction
from schemas import EVENT_TYPES, REJECTIONS, Event

TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}
if tuple(EVENT_TYPES) != MODEL_EVENT_TYPES:  # ``UserState.counts`` is stored in this order
    raise ImportError(f"schemas.EVENT_TYPES {EVENT_TYPES} differ from models.base.EVENT_TYPES {MODEL_EVENT_TYPES}")


class UserState(msgspec.Struct, gc=False):
    counts: list[int] = msgspec.field(default_factory=lambda: [0, 0, 0, 0])
    """Events applied per type, in the order of ``schemas.EVENT_TYPES``."""
    recent: list[str] = msgspec.field(default_factory=list)
    """Recent items, oldest first, at most ``recent_max``."""
    purchased: list[str] = msgspec.field(default_factory=list)
    """Purchased items, oldest first, at most ``purchased_max``."""
    shown: list[str] = msgspec.field(default_factory=list)
    """The item ids last recommended before the latest event (the impression it answered)."""
    offset: int = -1
    """Offset (in the user's events partition) of the last event applied."""
    first_ts: float | None = None
    last_ts: float | None = None
    purchase_probability: float | None = None
    """Online estimate that the user's next action is a purchase."""
    return_probability: float | None = None
    """Online estimate that the user comes back within the return horizon."""
    hidden: list[str] = msgspec.field(default_factory=list)
    """Items the user disliked or hid, oldest first, at most ``HIDDEN_MAX``: never recommended again."""
    topic: int = 0
    """Which ``events`` topic ``offset`` counts in (:func:`topic_identity` of its Kafka topic id; 0 unknown)."""

    def to_json(self, user_id: str) -> dict[str, Any]:
        """The public view served by ``GET /users/{id}/state``."""
        return {
            "user_id": user_id,
            "counts": dict(zip(EVENT_TYPES, self.counts)),
            "recent_items": list(self.recent),
            "purchased": list(self.purchased),
            "last_shown": list(self.shown),
            "events_applied": sum(self.counts),
            "last_offset": self.offset,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "purchase_probability": self.purchase_probability,
            "return_probability": self.return_probability,
            "hidden": list(self.hidden),
        }


HIDDEN_MAX = 500
"""Rejected items remembered per user (the oldest is forgotten first)."""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(UserState)


def encode_state(state: UserState) -> bytes:
    return _encoder.encode(state)


def decode_state(raw: bytes | None) -> UserState:
    return UserState() if raw is None else _decoder.decode(raw)


def topic_identity(topic_id: str | None) -> int:
    """A Kafka topic id (a UUID; Kafka >= 2.8) as the small integer a state stores; 0 when unknown.

    A topic deleted and created again under the same name gets a new id, and its offsets start
    over: an offset means something only together with the topic it counts in.

    >>> topic_identity("bb553a81-ed5e-4d40-92cd-5318169ac242"), topic_identity(None)
    (843672486738781396, 0)
    >>> topic_identity("00000000-0000-0000-0000-000000000000")   # what an old broker answers
    0
    """
    if not topic_id:
        return 0
    return int(uuid.UUID(str(topic_id)).hex[:15], 16)


def other_topic(state: UserState, topic: int) -> bool:
    """Whether ``state``'s offset counts in another ``events`` topic than ``topic`` (both known).

    >>> other_topic(UserState(offset=9, topic=5), 7), other_topic(UserState(offset=9), 7)
    (True, False)
    """
    return bool(topic and state.topic and state.topic != topic)


def apply_event(
    state: UserState,
    event: Event,
    offset: int,
    recent_max: int = RECENT_MAX,
    purchased_max: int = PURCHASED_MAX,
    topic: int = 0,
) -> tuple[UserState, bool]:
    """Return ``(new_state, applied)``; ``applied`` is False for an event already in the state.

    ``topic`` is the :func:`topic_identity` of the topic ``offset`` counts in (0: unknown, offsets
    compared as they are). A state whose offset counts in another topic (the topic was deleted
    and created again) takes the event as new: its offsets mean nothing here. The transition
    itself is :func:`models.base.apply_interaction`, shared with the models'
    :meth:`~models.base.UserContext.after`.

    >>> old = UserState(offset=900, topic=5)
    >>> apply_event(old, Event("e-1", "u-1", "i-1", "view", 10.0), offset=3, topic=7)[0].offset
    3
    >>> apply_event(old, Event("e-1", "u-1", "i-1", "view", 10.0), offset=3, topic=5)[1]
    False
    """
    if topic and state.topic != topic:
        state = msgspec.structs.replace(state, offset=-1 if state.topic else state.offset, topic=topic)
    if offset <= state.offset:
        return state, False
    if event.is_feedback:
        return apply_feedback(state, event, offset), True
    h = apply_interaction(
        History(state.recent, state.purchased, state.counts, state.first_ts, state.last_ts),
        event.item_id, event.type, event.ts, recent_max, purchased_max,
    )
    new = msgspec.structs.replace(
        state,
        counts=h.counts,
        recent=h.recent,
        purchased=h.purchased,
        offset=offset,
        first_ts=h.first_ts,
        last_ts=h.last_ts,
    )
    return new, True


def apply_feedback(state: UserState, event: Event, offset: int) -> UserState:
    """An impression, a dislike or a hide: what the user was really shown, or an item rejected.

    The counts, the recent items and the times stay (feedback is not an interaction); an
    impression becomes the list the user's next event answers; a rejected item joins ``hidden``.
    """
    if event.type in REJECTIONS:
        hidden = state.hidden
        if event.item_id not in hidden:
            hidden = [*hidden, event.item_id][-HIDDEN_MAX:]
        return msgspec.structs.replace(state, hidden=hidden, offset=offset)
    assert event.shown_items is not None, "schemas.records requires shown_items on impressions"
    return msgspec.structs.replace(state, shown=list(event.shown_items), offset=offset)
