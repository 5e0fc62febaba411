"""The ingest agent through Faust's test_context(): validation, dead letters, idempotent state.

The agent's output records are captured in memory here (no producer runs in test_context); the
integration tests check the same paths through the real broker.
"""

from __future__ import annotations

import orjson
import pytest

from stream_app.core.offsets import OffsetTracker
from stream_app.core.state import decode_state
from stream_app.settings import Settings
from stream_app.worker.build import Worker, build_worker


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, dict]] = []

    async def send(self, topic, key, value, headers=None, partition=None):
        self.records.append((topic, key, value, dict(headers or [])))

    def on(self, topic: str) -> list:
        return [r for r in self.records if r[0] == topic]


@pytest.fixture
def outbox() -> Recorder:
    return Recorder()


@pytest.fixture
def worker(outbox, tmp_path) -> Worker:
    """A worker of its own (own app, table and data folder) whose output is recorded in memory."""
    return build_worker(Settings(data_dir=tmp_path, app_id=f"unit-{tmp_path.name}"), outbox=outbox)


def ev(i: int, user: str = "u-1", item: str = "i-1", typ: str = "click") -> bytes:
    return orjson.dumps({"event_id": f"e-{i}", "user_id": user, "item_id": item, "type": typ, "ts": 100.0 + i})


async def drain(worker: Worker, outbox: Recorder) -> list[dict]:
    """Score whatever the agent queued, as the scorer task would."""
    batch = []
    while not worker.scorer.queue.empty():
        batch.append(worker.scorer.queue.get_nowait())
    acked = []

    async def ack(handle):
        acked.append(handle)

    async def send(key, value):
        await outbox.send(worker.topics.recommendations, key, value)

    if batch:
        await worker.scorer.process(batch, send, ack)
    assert len(acked) == len(batch)
    return [orjson.loads(r[2]) for r in outbox.on(worker.topics.recommendations)]


CODES = {"malformed": "malformed_json", "tombstone": "empty", "empty": "empty", "key": "bad_key"}
"""The DLQ code expected for each reason text below (the others are schema errors)."""


@pytest.mark.parametrize(
    "key,value,reason",
    [
        (b"u-1", b"{oops", "malformed"),
        (b"u-1", b"\xff\xfe", "malformed"),
        (b"u-1", None, "tombstone"),
        (b"u-1", b"", "empty"),
        (b"u-1", orjson.dumps({"event_id": "e", "user_id": "u-1", "item_id": "i", "type": "buy", "ts": 1}), "type"),
        (b"u-1", orjson.dumps({"event_id": "e", "user_id": "u-1", "item_id": "i", "type": "click", "ts": "x"}), "ts"),
        (b"u-1", orjson.dumps({"event_id": "e", "user_id": "u-1", "item_id": "i", "type": "click"}), "ts"),
        (b"u-1", orjson.dumps({"event_id": "e", "user_id": "u-1", "item_id": "", "type": "click", "ts": 1}),
         "item_id"),
        (b"u-1", b'{"event_id":"e","user_id":"u-1","item_id":"i","type":"click","ts":1e999}', "range"),
        (b"u-2", ev(1), "key"),
        (None, ev(1), "key"),
        (b"u-1", b"[1]", "object"),
        (b"u-1", b"7", "object"),
        (b"u-1", b'"just a string"', "object"),
    ],
)
async def test_invalid_records_are_dead_lettered_with_reason(worker, outbox, key, value, reason):
    async with worker.ingest_agent.test_context() as agent:
        await agent.put(value=value, key=key)
        await agent.put(value=ev(2), key=b"u-1")  # the stream goes on after a bad record
    dlq = outbox.on(worker.topics.dlq)
    assert len(dlq) == 1
    _topic, k, v, headers = dlq[0]
    assert (k, v) == (key, value)
    assert reason.lower() in headers["error"].decode().lower()
    assert {"error", "error_code", "topic", "partition", "offset"} <= set(headers)
    assert headers["error_code"].decode() == CODES.get(reason, "schema")
    assert worker.metrics.value("streamrec_dlq_total", reason=CODES.get(reason, "schema")) == 1
    recs = await drain(worker, outbox)
    assert [r["event_id"] for r in recs] == ["e-2"]


async def test_valid_events_update_state_once_and_get_a_recommendation(worker, outbox):
    async with worker.ingest_agent.test_context() as agent:
        await agent.put(value=ev(1, user="u-9", item="i-1", typ="view"), key=b"u-9")
        await agent.put(value=ev(2, user="u-9", item="i-2", typ="purchase"), key=b"u-9")
        await agent.put(value=ev(3, user="u-9", item="i-3", typ="click"), key=b"u-9")
        recs = await drain(worker, outbox)
        state = decode_state(worker.user_state.get(b"u-9"))
    assert state.counts == [1, 1, 0, 1]
    assert state.recent[-3:] == ["i-1", "i-2", "i-3"]
    assert state.purchased == ["i-2"]
    changelog = outbox.on(worker.store.changelog)
    assert [(k, v) for _, k, v, _ in changelog] == [(b"u-9", worker.user_state.get(b"u-9"))]  # one per batch
    assert [r["event_id"] for r in recs] == ["e-1", "e-2", "e-3"]
    for r in recs[1:]:
        assert "i-2" not in {i["item_id"] for i in r["items"]}
    assert not outbox.on(worker.topics.dlq)


async def test_a_replayed_record_changes_nothing(worker, outbox):
    async with worker.ingest_agent.test_context() as agent:
        await agent.put(value=ev(1, user="u-replay", item="i-1"), key=b"u-replay")
        await drain(worker, outbox)
        first = worker.user_state.get(b"u-replay")
    # a new test context starts offsets at 0 again: exactly what a replay after a crash looks like
    # (a new process, so nothing is remembered of the offsets passed on before)
    worker.ingest.offsets = OffsetTracker()
    async with worker.ingest_agent.test_context() as agent:
        await agent.put(value=ev(1, user="u-replay", item="i-1"), key=b"u-replay")
        recs = await drain(worker, outbox)
        again = worker.user_state.get(b"u-replay")
    assert first == again
    assert decode_state(again).counts == [0, 1, 0, 0]
    assert [r["event_id"] for r in recs] == ["e-1", "e-1"]  # the duplicate still gets its message
    # the replay writes the stored state to the changelog again (repairing one that missed it)
    assert [v for _, k, v, _ in outbox.on(worker.store.changelog)] == [first, first]


async def test_a_dead_letter_too_large_for_the_producer_is_cut_with_its_hash(worker, outbox):
    import hashlib

    from stream_app.core.dlq import DLQ_VALUE_LIMIT

    value = b'{"event_id": "' + b"x" * 1_030_000 + b'"}'  # over the producer's 1,000,000-byte limit
    async with worker.ingest_agent.test_context() as agent:
        await agent.put(value=value, key=b"u-1")
        await agent.put(value=ev(2), key=b"u-1")  # the stream goes on
    [(_, key, sent, headers)] = outbox.on(worker.topics.dlq)
    assert key == b"u-1" and sent == value[:DLQ_VALUE_LIMIT]
    assert headers["error_code"] == b"too_large" and headers["value_truncated"] == b"1"
    assert headers["original_value_bytes"] == str(len(value)).encode()
    assert headers["original_value_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert [r["event_id"] for r in await drain(worker, outbox)] == ["e-2"]


async def test_an_event_far_in_the_future_is_dead_lettered_and_does_not_become_trending(worker, outbox):
    far = orjson.dumps({"event_id": "e-far", "user_id": "u-1", "item_id": "i-poison", "type": "purchase",
                        "ts": 253_402_300_799.0})  # the last second of the year 9999
    async with worker.ingest_agent.test_context() as agent:
        await agent.put(value=far, key=b"u-1")
        await agent.put(value=ev(1, item="i-ok"), key=b"u-1")
    [(_, _, value, headers)] = outbox.on(worker.topics.dlq)
    assert value == far and headers["error_code"] == b"bad_time"
    assert [r["event_id"] for r in await drain(worker, outbox)] == ["e-1"]
    assert "i-poison" not in dict(worker.pipeline.ranker.popularity.leaderboard())


async def test_events_older_than_the_allowed_age_are_dead_lettered_when_a_limit_is_set(tmp_path):
    import time

    out = Recorder()
    w = build_worker(Settings(data_dir=tmp_path, app_id="unit-age", max_age_s=3600), outbox=out)
    now = time.time()
    old = orjson.dumps({"event_id": "e-old", "user_id": "u-1", "item_id": "i-1", "type": "click", "ts": now - 7200})
    fresh = orjson.dumps({"event_id": "e-new", "user_id": "u-1", "item_id": "i-2", "type": "click", "ts": now})
    async with w.ingest_agent.test_context() as agent:
        await agent.put(value=old, key=b"u-1")
        await agent.put(value=fresh, key=b"u-1")
    assert [h["error_code"] for _, _, _, h in out.on(w.topics.dlq)] == [b"bad_time"]
    assert [r["event_id"] for r in await drain(w, out)] == ["e-new"]


async def test_a_recreated_topic_is_reported_not_silently_ignored(worker, outbox, caplog):
    async with worker.ingest_agent.test_context() as agent:
        for i in range(3):
            await agent.put(value=ev(i, user="u-re", item=f"i-{i}"), key=b"u-re")
        await drain(worker, outbox)
    # a new context numbers offsets from 0 again: like a recreated topic, new events at old offsets
    worker.ingest.offsets = OffsetTracker()
    async with worker.ingest_agent.test_context() as agent:
        await agent.put(value=ev(50, user="u-re", item="i-new"), key=b"u-re")
        await drain(worker, outbox)
        state = decode_state(worker.user_state.get(b"u-re"))
    assert state.recent[-1] == "i-2"  # not applied: offsets alone cannot tell it from a replay
    assert worker.pipeline.suspect_replays == 1
    assert worker.metrics.value("streamrec_suspect_replays_total") == 1
    assert any("recreated" in r.message for r in caplog.records)
