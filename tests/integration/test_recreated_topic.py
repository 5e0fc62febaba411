"""A deleted and recreated ``events`` topic is noticed, said loudly, and its events are applied.

A real worker applies 40 events of 4 users (offsets 0..9 on each user's partition). It is
stopped, the topic is deleted and created again under the same name (offsets start over at 0),
and the worker started again on its own data. Taken by bare
offset, every new event would look like a replay and the users' states would freeze. The worker
compares the topic's Kafka id with the one the states and models' offsets count in: every new
event gets its recommendation and changes its user's state, the change is counted in
``/metrics`` and logged as an error.
"""

from __future__ import annotations

import time

import orjson
import pytest

from stream_app.kafka import as_connection, kafka_admin
from stream_app.ops.scaleout import metric as scaleout_metric
from stream_app.ops.testbed import event, read_records, send_events
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration
USERS = [f"u-re-{k}" for k in range(4)]


def state(w: Worker, user: str) -> dict:
    status, body = w.get(f"/users/{user}/state")
    assert status == 200, body
    return orjson.loads(body)


def metric(w: Worker, name: str) -> float:
    return scaleout_metric(w.get("/metrics")[1].decode(), name)


def test_a_recreated_events_topic_is_applied_not_taken_for_replays(pipeline, workers, kafka):
    w = Worker(pipeline, "w1", STREAMREC_CHECKPOINT_INTERVAL_S="1")  # the models' offsets are saved too
    workers.append(w.start())
    first = [event(i, USERS[i % 4], f"old-{i}") for i in range(40)]
    send_events(kafka, pipeline.events, first)
    assert len(read_records(kafka, pipeline.recommendations, 40, timeout=90, linger=0.5)) == 40
    before = {u: state(w, u) for u in USERS}
    assert all(s["counts"]["click"] == 10 for s in before.values())

    time.sleep(2.5)  # a checkpoint of the online models with their offsets (and the topic they count in)
    w.stop()
    admin = kafka_admin(as_connection(kafka))
    try:
        admin.delete_topics([pipeline.events])
        deadline = time.monotonic() + 60
        while pipeline.events in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        admin.close()
    pipeline.create_topics()  # the same name and partitions: offsets start over at 0
    w.start()
    second = [event(100 + i, USERS[i % 4], f"new-{i}") for i in range(20)]
    send_events(kafka, pipeline.events, second)

    recs = read_records(kafka, pipeline.recommendations, 60, timeout=120, linger=1.0)
    answered = {orjson.loads(r.value)["event_id"] for r in recs}
    assert {e["event_id"] for e in second} <= answered, "events of the recreated topic went unanswered"
    after = {u: state(w, u) for u in USERS}
    for k, u in enumerate(USERS):
        assert after[u]["counts"]["click"] == 15, (after[u], {m: metric(w, m) for m in (  # 10 old + 5 new
            "streamrec_duplicate_events_total", "streamrec_other_topic_states_total",
            "streamrec_events_topic_changes_total", "streamrec_suspect_replays_total")})
        assert after[u]["recent_items"][-1] == f"new-{16 + k}"
    assert metric(w, "streamrec_events_topic_changes_total") == 1
    assert metric(w, "streamrec_other_topic_states_total") == 4
    assert metric(w, "streamrec_suspect_replays_total") == 0
    assert any("deleted and created again" in line for line in w.log_lines(("ERROR",)))
    assert w.alive
