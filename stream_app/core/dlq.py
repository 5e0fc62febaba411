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
