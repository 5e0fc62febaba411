"""Why a record goes to the dead-letter topic: a closed set of reasons, each with a stable code.

The code labels the ``streamrec_dlq_total`` metric and the DLQ record's ``error_code`` header;
the readable reason (the ``error`` header) says what exactly was wrong. Invalid events carry
their code from validation (:class:`schemas.InvalidEvent` ``.kind``), so nothing here reads
message text.

>>> from schemas import InvalidEvent, decode_event
>>> try:
...     decode_event(b"{oops")
... except InvalidEvent as exc:
...     DlqReason.of(exc)
<DlqReason.MALFORMED_JSON: 'malformed_json'>
>>> DlqReason.BAD_KEY.code
'bad_key'
"""

from __future__ import annotations

import enum
import hashlib

from schemas import InvalidEvent


class DlqReason(enum.Enum):
    EMPTY = "empty"
    """No value, or an empty one (a tombstone is not an event)."""
    TOO_LARGE = "too_large"
    """Over the 64 KiB limit of an event."""
    MALFORMED_JSON = "malformed_json"
    """Not UTF-8 JSON."""
    SCHEMA = "schema"
    """JSON that breaks the events schema (a missing field, a wrong type, an unknown event type)."""
    BAD_KEY = "bad_key"
    """The record key is not the event's user_id."""
    BAD_TIME = "bad_time"
    """``ts`` too far ahead of the worker's clock (or older than the allowed age): one such event
    would outweigh every other in the decayed counts for good."""
    INTERNAL = "internal"
    """The worker failed on this record (a bug): dead-lettered so the partition goes on."""

    @property
    def code(self) -> str:
        return str(self.value)

    @classmethod
    def of(cls, exc: InvalidEvent) -> DlqReason:
        """The reason of a validation error (an unknown kind counts as a schema error)."""
        try:
            return cls(exc.kind)
        except ValueError:
            return cls.SCHEMA


DLQ_VALUE_LIMIT = 512 * 1024
"""Largest value a dead letter carries as it was; a longer one is cut (the producer refuses records
over 1,000,000 bytes, which the broker still accepts on the events topic)."""
DLQ_KEY_LIMIT = 16 * 1024


def bounded(key: bytes | None, value: bytes | None, value_limit: int = DLQ_VALUE_LIMIT,
            key_limit: int = DLQ_KEY_LIMIT) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """``(key, value, headers)`` of a dead letter that fits the producer's limit.

    A value (or key) over its limit is cut to the limit; headers then say so and give the
    original's size and SHA-256, so the record can still be found and told apart.

    >>> key, value, headers = bounded(b"u-1", b"x" * 10, value_limit=4)
    >>> value, dict(headers)["original_value_bytes"], dict(headers)["value_truncated"]
    (b'xxxx', b'10', b'1')
    >>> bounded(b"u-1", b"{}")
    (b'u-1', b'{}', [])
    """
    headers: list[tuple[str, bytes]] = []
    if value is not None and len(value) > value_limit:
        headers += [("value_truncated", b"1"), ("original_value_bytes", str(len(value)).encode()),
                    ("original_value_sha256", hashlib.sha256(value).hexdigest().encode())]
        value = value[:value_limit]
    if key is not None and len(key) > key_limit:
        headers += [("key_truncated", b"1"), ("original_key_bytes", str(len(key)).encode()),
                    ("original_key_sha256", hashlib.sha256(key).hexdigest().encode())]
        key = key[:key_limit]
    return key, value, headers


def check_time(ts: float, now: float, max_future_s: float, max_age_s: float = 0.0) -> None:
    """Raise :class:`schemas.InvalidEvent` (kind ``bad_time``) unless ``ts`` lies in the window.

    The window is ``now - max_age_s .. now + max_future_s`` (no lower bound when ``max_age_s`` is 0,
    so old streams can be replayed).

    >>> check_time(1_000.0, now=1_000.0, max_future_s=60)
    >>> try:
    ...     check_time(253_402_300_799.0, now=1_000.0, max_future_s=86_400)
    ... except InvalidEvent as exc:
    ...     print(exc.kind, exc)
    bad_time `ts` is 253402299799 s ahead of the worker's clock (at most 86400 s allowed, STREAMREC_MAX_FUTURE_S)
    """
    if ts > now + max_future_s:
        raise InvalidEvent(f"`ts` is {ts - now:.0f} s ahead of the worker's clock (at most {max_future_s:.0f} s "
                           "allowed, STREAMREC_MAX_FUTURE_S)", DlqReason.BAD_TIME.code)
    if max_age_s > 0 and ts < now - max_age_s:
        raise InvalidEvent(f"`ts` is {now - ts:.0f} s old (at most {max_age_s:.0f} s allowed, STREAMREC_MAX_AGE_S)",
                           DlqReason.BAD_TIME.code)
