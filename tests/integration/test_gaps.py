"""Offsets the consumer skips are read back from the real broker and processed in order."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from stream_app import broker
from stream_app.core.state import decode_state
from stream_app.kafka import KafkaConnection
from stream_app.ops.testbed import producer
from stream_app.settings import Settings
from stream_app.worker.readback import fetch_range, start_offsets

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, partition: int, records: list[tuple[bytes, bytes]]) -> list[int]:
    p = producer(bootstrap)
    futures = [p.send(topic, key=k, value=v, partition=partition) for k, v in records]
    p.flush()
    offsets = [f.get(timeout=30).offset for f in futures]
    p.close()
    return offsets


def test_fetch_range_reads_exactly_the_offsets_asked_for(kafka):
    topic = f"gaps-{uuid.uuid4().hex[:8]}"
    broker.ensure_topics(kafka, {topic: 2})
    offsets = _produce(kafka, topic, 1, [(b"k", f"v{i}".encode()) for i in range(20)])
    assert offsets == list(range(20))
    recs = fetch_range(KafkaConnection(kafka), topic, 1, 5, 12)
    assert [r.offset for r in recs] == list(range(5, 12))
    assert [r.value for r in recs] == [f"v{i}".encode() for i in range(5, 12)]
    assert [r.offset for r in fetch_range(KafkaConnection(kafka), topic, 1, 19, 20)] == [19]
    assert fetch_range(KafkaConnection(kafka), topic, 0, 0, 0) == []


def test_start_offsets_are_the_committed_ones_or_the_first(kafka):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic, group = f"gaps-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    broker.ensure_topics(kafka, {topic: 3})
    _produce(kafka, topic, 0, [(b"k", b"v")] * 5)
    _produce(kafka, topic, 1, [(b"k", b"v")] * 3)
    c = KafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    c.assign([TopicPartition(topic, 0)])
    c.commit({TopicPartition(topic, 0): OffsetAndMetadata(3, "", -1)})
    c.close()
    # partition 0 resumes at its committed offset; 1 and 2 (nothing committed) at their first
    assert start_offsets(KafkaConnection(kafka), group, topic, 3) == {0: 3, 1: 0, 2: 0}


async def test_the_agent_processes_skipped_offsets_before_the_event_after_them(kafka, tmp_path):
    from stream_app.worker.build import build_worker
    from tests.unit.stream_app.worker.test_agents import Recorder, drain

    outbox = Recorder()
    topic = f"gaps-{uuid.uuid4().hex[:6]}"
    w = build_worker(Settings(broker=f"kafka://{kafka}", data_dir=tmp_path, events_topic=topic,
                              app_id=f"gaps-{uuid.uuid4().hex[:6]}"), outbox=outbox)
    broker.ensure_topics(kafka, {topic: w.settings.events_partitions})
    user = f"u-gap-{uuid.uuid4().hex[:6]}"
    events = [orjson.dumps({"event_id": f"g-{i}", "user_id": user, "item_id": f"i-{i}", "type": "view",
                            "ts": 100.0 + i}) for i in range(4)]
    offsets = _produce(kafka, topic, 0, [(user.encode(), v) for v in events])

    async with w.ingest_agent.test_context() as agent:
        # the consumer delivers the first and the last record; the two between are skipped
        agent.sent_offset = offsets[0]
        await agent.put(value=events[0], key=user.encode(), partition=0)
        agent.sent_offset = offsets[3]
        await agent.put(value=events[3], key=user.encode(), partition=0)
        for _ in range(400):  # the agent reads the skipped records in a thread, then queues all three
            if w.scorer.queue.qsize() >= 4:
                break
            await asyncio.sleep(0.05)
        recs = await drain(w, outbox)
        state = decode_state(w.user_state.get(user.encode()))

    assert [r["event_id"] for r in recs] == ["g-0", "g-1", "g-2", "g-3"]
    assert state.counts[0] == 4 and state.recent[-4:] == ["i-0", "i-1", "i-2", "i-3"]
    assert state.offset == offsets[3]
