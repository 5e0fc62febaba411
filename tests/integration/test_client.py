"""The client against a real local Kafka broker: validation at the source, round trips, typed reads."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from schemas import InvalidEvent, RecItem, Recommendation, decode_event
from stream_app.client import EventProducer, RecommendationConsumer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

HOST, PORT = "127.0.0.1", 39292
BOOTSTRAP = f"{HOST}:{PORT}"
TOPICS = {"events": 2, "recommendations": 2, "recs-bad": 1, "recs-late": 1}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    from stream_app import broker as kafka_broker

    data_dir = tmp_path_factory.mktemp("kafka-client")
    info = kafka_broker.up(HOST, PORT, data_dir, Path.home() / ".cache/streamrec/kafka", TOPICS)
    try:
        assert info["running"], info
        yield info["bootstrap"]
    finally:
        kafka_broker.down(data_dir)


def _read_all(bootstrap: str, topic: str, expect: int, idle_ms: int = 5000) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
    )
    out = []
    try:
        for record in consumer:
            out.append(record)
            if len(out) >= expect:
                break
    finally:
        consumer.close()
    return out


def _event(n: int, user: str) -> dict:
    return {"event_id": f"e-{n}", "user_id": user, "item_id": f"i-{n % 7}", "type": "click",
            "ts": 1_732_550_000.0 + n, "price": 1.5 * n, "session_id": "s-1"}


def _rec(user: str, event_id: str, items: list[str]) -> dict:
    return {"user_id": user, "event_id": event_id,
            "items": [{"item_id": i, "score": 1.0 / (k + 1), "source": "deep"} for k, i in enumerate(items)],
            "model_version": {"deep": "v-1", "online": 3}, "generated_at": 1_732_550_000.5,
            "latency_ms": 2.5}


def test_invalid_events_raise_and_send_nothing_then_valid_events_round_trip(broker):
    sent = []
    with EventProducer(f"kafka://{broker}") as producer:  # the Faust-style URL is accepted too
        for bad in (
            {"event_id": "e-bad"},  # missing fields
            {**_event(0, "u-1"), "type": "like"},
            {**_event(0, "u-1"), "ts": float("nan")},
            {**_event(0, "u-1"), "price": -1.0},
            {**_event(0, "u-1"), "user_id": ""},
            {**_event(0, "u-1"), "blob": "x" * 70_000},  # over 64 KiB
            "not a dict",
        ):
            with pytest.raises(InvalidEvent):
                producer.send(bad)
        assert producer.sent == 0
        for n in range(20):
            event = _event(n, f"u-{n % 3}")
            producer.send(event)
            sent.append(event)
        producer.flush()
        assert producer.sent == 20

    records = _read_all(broker, "events", expect=len(sent) + 1, idle_ms=4000)
    assert len(records) == len(sent), "exactly the valid events reach the topic"
    by_id = {decode_event(r.value).event_id: r for r in records}
    assert set(by_id) == {e["event_id"] for e in sent}
    partition_of: dict[str, int] = {}
    for event in sent:
        record = by_id[event["event_id"]]
        assert record.key == event["user_id"].encode()
        assert json.loads(record.value) == event
        assert b", " not in record.value and b": " not in record.value  # compact JSON
        # One user, one partition: the key decides, so a user's events stay in order.
        assert partition_of.setdefault(event["user_id"], record.partition) == record.partition
    for user in partition_of:
        offsets = [by_id[e["event_id"]].offset for e in sent if e["user_id"] == user]
        assert offsets == sorted(offsets)


def test_consumer_yields_typed_recommendations(broker):
    tag = uuid.uuid4().hex[:8]
    expected = [_rec(f"u-{tag}-{n}", f"e-{n}", [f"i-{n}", f"i-{n + 1}"]) for n in range(5)]
    with EventProducer(broker, topic="recommendations") as raw:
        for rec in expected:
            raw.send_raw(rec["user_id"].encode(), json.dumps(rec).encode())
        raw.flush()

    got = []
    with RecommendationConsumer(broker, idle_timeout_s=10.0) as consumer:
        for rec in consumer:
            if rec.user_id.startswith(f"u-{tag}-"):
                got.append(rec)
                if len(got) == len(expected):
                    break
    assert all(isinstance(rec, Recommendation) for rec in got)
    assert sorted(got, key=lambda r: r.event_id) == [
        Recommendation(
            user_id=r["user_id"], event_id=r["event_id"],
            items=[RecItem(**item) for item in r["items"]],
            model_version=r["model_version"], generated_at=r["generated_at"], latency_ms=r["latency_ms"],
        )
        for r in expected
    ]
    assert got[0].items[0].source == "deep" and got[0].purchase_probability is None


def test_consumer_poll_and_from_beginning_false(broker):
    with EventProducer(broker, topic="recs-late") as raw:
        raw.send_raw(b"u-old", json.dumps(_rec("u-old", "e-old", ["i-1"])).encode())
        raw.flush()
    with RecommendationConsumer(broker, topic="recs-late", from_beginning=False) as consumer:
        assert consumer.poll(timeout=1.0) == []  # the old message is before our start
        with EventProducer(broker, topic="recs-late") as raw:
            raw.send_raw(b"u-new", json.dumps(_rec("u-new", "e-new", ["i-2"])).encode())
            raw.flush()
        seen: list[Recommendation] = []
        for _ in range(20):
            seen += consumer.poll(timeout=0.5)
            if seen:
                break
    assert [r.user_id for r in seen] == ["u-new"]
    with RecommendationConsumer(broker, topic="recs-late", idle_timeout_s=3.0) as consumer:
        assert [r.user_id for r in consumer] == ["u-old", "u-new"]


def test_consumer_group_reads_and_commits(broker):
    group = f"g-{uuid.uuid4().hex[:8]}"
    with RecommendationConsumer(broker, topic="recs-late", group_id=group, idle_timeout_s=10.0) as consumer:
        got = []
        for rec in consumer:
            got.append(rec.user_id)
            if len(got) == 2:
                break
        assert got == ["u-old", "u-new"]
    with RecommendationConsumer(broker, topic="recs-late", group_id=group, idle_timeout_s=3.0) as consumer:
        assert list(consumer) == []  # the group already read them


def test_missing_topic_is_a_clear_error(broker):
    with pytest.raises(ValueError, match="topic 'no-such-topic' does not exist"):
        RecommendationConsumer(broker, topic="no-such-topic")


def test_invalid_recommendation_raises_or_is_counted(broker):
    with EventProducer(broker, topic="recs-bad") as raw:
        raw.send_raw(b"u-1", b'{"user_id": "u-1"}')
        raw.send_raw(b"u-1", None)
        raw.send_raw(b"u-2", json.dumps(_rec("u-2", "e-2", ["i-9"])).encode())
        raw.flush()

    with (RecommendationConsumer(broker, topic="recs-bad", idle_timeout_s=5.0) as consumer,
          pytest.raises(ValueError, match=r"invalid recommendation at recs-bad\[0\]@0")):
        list(consumer)

    with RecommendationConsumer(broker, topic="recs-bad", idle_timeout_s=10.0, errors="skip") as consumer:
        got = next(iter(consumer))  # the two bad ones come first and are skipped
        assert got.user_id == "u-2"
        assert consumer.invalid == 2


def test_send_raw_bypasses_validation(broker):
    with EventProducer(broker, topic="recs-bad") as raw:
        future = raw.send_raw(None, b"\xff not json")
        raw.flush()
        meta = future.get(timeout=10)
    assert meta.topic == "recs-bad" and meta.offset >= 0
