"""Typed records for the topics, validated with msgspec (compiled once, a few microseconds a message).

The JSON Schema files beside this module are the published contract; ``tests/unit/schemas/test_records.py``
checks that these records accept and refuse the same messages as the schema files.

>>> ev = decode_event(b'{"event_id":"e-1","user_id":"u-1","item_id":"i-1","type":"click","ts":1.5}')
>>> ev.user_id, ev.type, ev.price
('u-1', 'click', None)
>>> try:
...     decode_event(b'{"event_id":"e-1"}')
... except InvalidEvent as exc:
...     print(exc)
Object missing required field `user_id`
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec

MAX_EVENT_BYTES = 64 * 1024
EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase")
"""The interactions: what the models learn from and a user's counts keep (in this order)."""
FEEDBACK_TYPES: tuple[str, ...] = ("impression", "dislike", "hide")
"""Feedback on the lists shown: an impression reports what the client showed (``shown_items``);
a dislike or a hide rejects ``item_id``, which the user's lists never hold again."""
REJECTIONS: frozenset[str] = frozenset({"dislike", "hide"})
MAX_SHOWN = 100

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
EventType = Literal["view", "click", "add_to_cart", "purchase", "impression", "dislike", "hide"]


class InvalidEvent(ValueError):
    """An event that breaks the contract; the message is the readable reason sent to the DLQ.

    ``kind`` classifies it: ``empty``, ``too_large``, ``malformed_json``, ``schema`` or ``bad_key``.
    """

    def __init__(self, reason: str, kind: str = "schema") -> None:
        super().__init__(reason)
        self.kind = kind


class Event(msgspec.Struct, frozen=True, gc=False):
    """One user interaction (the value of an ``events`` record)."""

    event_id: Id
    user_id: Id
    item_id: Id
    type: EventType
    ts: float
    price: Annotated[float, msgspec.Meta(ge=0)] | None = None
    session_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    recommendation_id: Id | None = None
    """The list the event answers or reports (optional)."""
    shown_items: Annotated[tuple[Id, ...], msgspec.Meta(min_length=1, max_length=MAX_SHOWN)] | None = None
    """For an impression: the item ids shown, in the order shown."""

    @property
    def is_feedback(self) -> bool:
        """An impression, a dislike or a hide (not an interaction the models learn items from)."""
        return self.type in _FEEDBACK


_FEEDBACK = frozenset(FEEDBACK_TYPES)


class RecItem(msgspec.Struct, gc=False):
    item_id: str
    score: float
    source: str


class Recommendation(msgspec.Struct, gc=False):
    """One recommendation message (the value of a ``recommendations`` record)."""

    user_id: str
    event_id: str
    items: list[RecItem]
    model_version: dict[str, str | int | None]
    generated_at: float
    latency_ms: float
    purchase_probability: float | None = None
    return_probability: float | None = None
    recommendation_id: str | None = None
    """Unique name of this list (messages of older workers have none)."""


_event_decoder = msgspec.json.Decoder(Event)
_rec_decoder = msgspec.json.Decoder(Recommendation)
_encoder = msgspec.json.Encoder()


def _check_numbers(ev: Event) -> Event:
    if not math.isfinite(ev.ts):
        raise InvalidEvent("`ts` must be a finite number of seconds since the epoch")
    if ev.price is not None and not math.isfinite(ev.price):
        raise InvalidEvent("`price` must be a finite number >= 0")
    if ev.type == "impression" and ev.shown_items is None:
        raise InvalidEvent("an impression needs `shown_items`: the item ids shown, in the order shown")
    return ev


def decode_event(raw: bytes | bytearray | memoryview | None) -> Event:
    """Parse and validate one raw ``events`` value; raise :class:`InvalidEvent` with the reason."""
    if raw is None:
        raise InvalidEvent("empty value (tombstone): an event must be a JSON object", "empty")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"message of {len(raw)} bytes is over the {MAX_EVENT_BYTES}-byte limit", "too_large")
    if not raw:
        raise InvalidEvent("empty value: an event must be a JSON object", "empty")
    try:
        ev = _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for bad UTF-8 in a string
        raise InvalidEvent(f"not valid UTF-8 JSON: {exc}", "malformed_json") from None
    return _check_numbers(ev)


def event_from_dict(data: dict[str, Any]) -> Event:
    """Validate an event given as a Python dict (used by producers before sending)."""
    try:
        ev = msgspec.convert(data, Event)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(str(exc)) from None
    ev = _check_numbers(ev)
    size = len(_encoder.encode(data))
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(f"message of {size} bytes is over the {MAX_EVENT_BYTES}-byte limit", "too_large")
    return ev


def decode_recommendation(raw: bytes) -> Recommendation:
    return _rec_decoder.decode(raw)


def encode(obj: object) -> bytes:
    """Encode a record (or plain data) as compact UTF-8 JSON."""
    return _encoder.encode(obj)
