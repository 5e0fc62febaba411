"""The ingest agent through Faust's test_context(): validation, dead letters, idempotent state.

The agent's output records are captured in memory here (no producer runs in test_context); the
integration tests check the same paths through the real broker.
"""

from __future__ import annotations

import orjson
import pytest

from stream_app.core.state import decode_state
from stream_app.worker import agents
from stream_app.worker.readback import OffsetTracker


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, dict]] = []

    async def send(self, topic, key, value, headers=None, partition=None):
        self.records.append((topic, key, value, dict(headers or [])))

    def on(self, topic: str) -> list:
        return [r for r in self.records if r[0] == topic]


@pytest.fixture(autouse=True)
def fresh_offsets(monkeypatch) -> None:
    """Each test_context() delivers offsets from 0 again, like a new assignment: start afresh."""
    monkeypatch.setattr(agents, "offsets", OffsetTracker())


@pytest.fixture
def outbox(monkeypatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(agents, "outbox", rec)
    return rec


def ev(i: int, user: str = "u-1", item: str = "i-1", typ: str = "click") -> bytes:
    return orjson.dumps({"event_id": f"e-{i}", "user_id": user, "item_id": item, "type": typ, "ts": 100.0 + i})


async def drain(outbox: Recorder) -> list[dict]:
    """Score whatever the agent queued, as the scorer task would."""
    batch = []
    while not agents.scorer.queue.empty():
        batch.append(agents.scorer.queue.get_nowait())
    acked = []

    async def ack(handle):
        acked.append(handle)

    async def send(key, value):
        await outbox.send(agents.RECOMMENDATIONS, key, value)

    if batch:
        await agents.scorer.process(batch, send, ack)
    assert len(acked) == len(batch)
    return [orjson.loads(r[2]) for r in outbox.on(agents.RECOMMENDATIONS)]


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
async def test_invalid_records_are_dead_lettered_with_reason(outbox, key, value, reason):
    async with agents.ingest.test_context() as agent:
        await agent.put(value=value, key=key)
        await agent.put(value=ev(2), key=b"u-1")  # the stream goes on after a bad record
    dlq = outbox.on(agents.DLQ)
    assert len(dlq) == 1
    topic, k, v, headers = dlq[0]
    assert (k, v) == (key, value)
    assert reason.lower() in headers["error"].decode().lower()
    assert {"error", "topic", "partition", "offset"} <= set(headers)
    recs = await drain(outbox)
    assert [r["event_id"] for r in recs] == ["e-2"]


async def test_valid_events_update_state_once_and_get_a_recommendation(outbox):
    async with agents.ingest.test_context() as agent:
        await agent.put(value=ev(1, user="u-9", item="i-1", typ="view"), key=b"u-9")
        await agent.put(value=ev(2, user="u-9", item="i-2", typ="purchase"), key=b"u-9")
        await agent.put(value=ev(3, user="u-9", item="i-3", typ="click"), key=b"u-9")
        recs = await drain(outbox)
        state = decode_state(agents.user_state.get(b"u-9"))
    assert state.counts == [1, 1, 0, 1]
    assert state.recent[-3:] == ["i-1", "i-2", "i-3"]
    assert state.purchased == ["i-2"]
    changelog = outbox.on(agents.store.changelog)
    assert [(k, v) for _, k, v, _ in changelog] == [(b"u-9", agents.user_state.get(b"u-9"))]  # one per batch
    assert [r["event_id"] for r in recs] == ["e-1", "e-2", "e-3"]
    for r in recs[1:]:
        assert "i-2" not in {i["item_id"] for i in r["items"]}
    assert not outbox.on(agents.DLQ)


async def test_a_replayed_record_changes_nothing(outbox):
    async with agents.ingest.test_context() as agent:
        await agent.put(value=ev(1, user="u-replay", item="i-1"), key=b"u-replay")
        await drain(outbox)
        first = agents.user_state.get(b"u-replay")
    # a new test context starts offsets at 0 again: exactly what a replay after a crash looks like
    # (a new process, so nothing is remembered of the offsets passed on before)
    agents.offsets = OffsetTracker()
    async with agents.ingest.test_context() as agent:
        await agent.put(value=ev(1, user="u-replay", item="i-1"), key=b"u-replay")
        recs = await drain(outbox)
        again = agents.user_state.get(b"u-replay")
    assert first == again
    assert decode_state(again).counts == [0, 1, 0, 0]
    assert [r["event_id"] for r in recs] == ["e-1", "e-1"]  # the duplicate still gets its message
    # the replay writes the stored state to the changelog again (repairing one that missed it)
    assert [v for _, k, v, _ in outbox.on(agents.store.changelog)] == [first, first]
