"""The JSON Schema files and the Python records accept and refuse the same messages."""

from __future__ import annotations

import json
import math

import jsonschema
import orjson
import pytest

from schemas import MAX_EVENT_BYTES, InvalidEvent, decode_event, decode_recommendation, event_from_dict
from tests.paths import ROOT, shared_data_dir  # noqa: F401

SCHEMAS = ROOT / "schemas"
EVENT_SCHEMA = json.loads((SCHEMAS / "events.schema.json").read_text())
REC_SCHEMA = json.loads((SCHEMAS / "recommendations.schema.json").read_text())
DLQ_SCHEMA = json.loads((SCHEMAS / "events-dlq.schema.json").read_text())

BASE = {"event_id": "e-1", "user_id": "u-42", "item_id": "i-7", "type": "click", "ts": 1732550000.25}

VALID = [
    BASE,
    {**BASE, "price": 19.9, "session_id": "s-3"},
    {**BASE, "price": 0},
    {**BASE, "type": "view"}, {**BASE, "type": "add_to_cart"}, {**BASE, "type": "purchase"},
    {**BASE, "ts": 0}, {**BASE, "ts": -5.5}, {**BASE, "ts": 1732550000},
    {**BASE, "unknown": {"nested": [1, 2]}},
    {**BASE, "user_id": "u" * 128},
    {**BASE, "price": None, "session_id": None},
    {**BASE, "item_id": "ünïcödé-✓"},
    {**BASE, "type": "impression", "shown_items": ["i-7", "i-8"], "recommendation_id": "r-1"},
    {**BASE, "type": "dislike"}, {**BASE, "type": "hide", "recommendation_id": "r-2"},
    {**BASE, "recommendation_id": None, "shown_items": None},
    {**BASE, "shown_items": ["i-1"]},  # allowed on any type, read only on impressions
]
INVALID = [
    {},
    {k: v for k, v in BASE.items() if k != "event_id"},
    {k: v for k, v in BASE.items() if k != "user_id"},
    {k: v for k, v in BASE.items() if k != "item_id"},
    {k: v for k, v in BASE.items() if k != "type"},
    {k: v for k, v in BASE.items() if k != "ts"},
    {**BASE, "event_id": ""}, {**BASE, "user_id": ""}, {**BASE, "item_id": ""},
    {**BASE, "user_id": "u" * 129}, {**BASE, "item_id": "i" * 1000},
    {**BASE, "user_id": 42}, {**BASE, "item_id": None}, {**BASE, "event_id": ["e"]},
    {**BASE, "type": "like"}, {**BASE, "type": "CLICK"}, {**BASE, "type": None},
    {**BASE, "ts": "yesterday"}, {**BASE, "ts": True}, {**BASE, "ts": None},
    {**BASE, "price": -0.01}, {**BASE, "price": "9.99"},
    {**BASE, "session_id": 3}, {**BASE, "session_id": "s" * 129},
    {**BASE, "type": "impression"}, {**BASE, "type": "impression", "shown_items": None},
    {**BASE, "type": "impression", "shown_items": []}, {**BASE, "type": "impression", "shown_items": "i-7"},
    {**BASE, "type": "impression", "shown_items": ["i-1", ""]},
    {**BASE, "type": "impression", "shown_items": [f"i-{k}" for k in range(101)]},
    {**BASE, "recommendation_id": ""}, {**BASE, "recommendation_id": 7}, {**BASE, "type": "Dislike"},
]
RAW_INVALID = [
    b"", b"null", b"[]", b"42", b'"str"', b"{", b"\xff\xfe\xfd", b"{'single': 'quotes'}",
    orjson.dumps(BASE)[:-1],
    b'{"event_id":"e","user_id":"u","item_id":"i","type":"click","ts":NaN}',
    b'{"event_id":"e","user_id":"u","item_id":"i","type":"click","ts":Infinity}',
    b'{"event_id":"e","user_id":"u","item_id":"i","type":"click","ts":1e999}',
    b'{"event_id":"e","user_id":"u","item_id":"i","type":"click","ts":1,"price":-1e999}',
    orjson.dumps({**BASE, "pad": "x" * MAX_EVENT_BYTES}),
]


def schema_says_valid(raw: bytes) -> bool:
    """The schema plus the two rules JSON Schema cannot state: size and finite numbers."""
    if len(raw) > MAX_EVENT_BYTES:
        return False
    try:
        data = json.loads(raw)
    except ValueError:
        return False
    for key in ("ts", "price"):
        v = data.get(key) if isinstance(data, dict) else None
        if isinstance(v, float) and not math.isfinite(v):
            return False
    try:
        jsonschema.validate(data, EVENT_SCHEMA, cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError:
        return False
    return True


def records_say_valid(raw: bytes) -> bool:
    try:
        decode_event(raw)
    except InvalidEvent:
        return False
    return True


@pytest.mark.parametrize("event", VALID)
def test_valid_events_pass_both(event):
    raw = orjson.dumps(event)
    assert schema_says_valid(raw) and records_say_valid(raw)
    assert event_from_dict(event).user_id == event["user_id"]


@pytest.mark.parametrize("event", INVALID)
def test_invalid_events_fail_both(event):
    raw = orjson.dumps(event)
    assert not schema_says_valid(raw)
    assert not records_say_valid(raw)
    with pytest.raises(InvalidEvent):
        event_from_dict(event)


@pytest.mark.parametrize("raw", RAW_INVALID)
def test_raw_garbage_fails_both(raw):
    assert not schema_says_valid(raw)
    with pytest.raises(InvalidEvent) as err:
        decode_event(raw)
    assert str(err.value)  # a readable reason for the DLQ header


def test_tombstone_is_invalid():
    with pytest.raises(InvalidEvent, match="tombstone"):
        decode_event(None)


def test_recommendation_example_matches_schema_and_record():
    msg = {"user_id": "u-42", "event_id": "e-1", "items": [{"item_id": "i-9", "score": 0.91, "source": "deep"}],
           "model_version": {"deep": "2026-11-25T20-00-00Z-3", "online": 1841},
           "generated_at": 1732550000.27, "latency_ms": 3.1}
    jsonschema.validate(msg, REC_SCHEMA, cls=jsonschema.Draft202012Validator)
    rec = decode_recommendation(orjson.dumps(msg))
    assert rec.items[0].item_id == "i-9" and rec.model_version["online"] == 1841
    bad = {**msg, "items": [{"item_id": "i-9"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, REC_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_dlq_headers_schema():
    ok = {"error": "Expected `float`", "topic": "events", "partition": "3", "offset": "17"}
    jsonschema.validate(ok, DLQ_SCHEMA, cls=jsonschema.Draft202012Validator)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**ok, "offset": "-1"}, DLQ_SCHEMA, cls=jsonschema.Draft202012Validator)
