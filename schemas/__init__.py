"""Message formats of every streamrec topic: JSON Schema files and the matching Python records."""

from schemas.records import (
    EVENT_TYPES,
    FEEDBACK_TYPES,
    MAX_EVENT_BYTES,
    REJECTIONS,
    Event,
    InvalidEvent,
    RecItem,
    Recommendation,
    decode_event,
    decode_recommendation,
    encode,
    event_from_dict,
)

__all__ = [
    "EVENT_TYPES",
    "FEEDBACK_TYPES",
    "MAX_EVENT_BYTES",
    "REJECTIONS",
    "Event",
    "InvalidEvent",
    "RecItem",
    "Recommendation",
    "decode_event",
    "decode_recommendation",
    "encode",
    "event_from_dict",
]
