"""What the online models learned survives a stop, and what a kill -9 loses is counted and said.

A real worker with periodic checkpoints turned off (an hour apart) learns 120 events, is stopped
(SIGTERM) and started again: the checkpoint written at shutdown holds every event, so nothing
is unlearned. It learns 120 more and is killed with SIGKILL once they are committed: the
restarted worker's models are back at the shutdown checkpoint, and the events between it and the
committed offsets are counted in ``streamrec_unlearned_events_total`` and logged. Users' states
lose nothing either way.
"""

from __future__ import annotations

import time

import orjson
import pytest

from stream_app.ops.scaleout import metric as scaleout_metric
from stream_app.ops.testbed import event, read_records, send_events
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration
USERS = [f"u-l-{k}" for k in range(6)]


def metric(w: Worker, name: str) -> float:
    return scaleout_metric(w.get("/metrics")[1].decode(), name)


def committed(kafka: str, group: str, topic: str, partitions: int) -> int:
    from kafka import TopicPartition

    from stream_app.kafka import as_connection, kafka_consumer

    c = kafka_consumer(as_connection(kafka), group_id=group, enable_auto_commit=False)
    try:
        return sum(c.committed(TopicPartition(topic, p)) or 0 for p in range(partitions))
    finally:
        c.close()


def test_a_stop_keeps_the_learning_and_a_kill_counts_what_it_loses(pipeline, workers, kafka):
    w = Worker(pipeline, "w1", STREAMREC_CHECKPOINT_INTERVAL_S="3600")
    workers.append(w.start())
    first = [event(i, USERS[i % 6], f"i-{i % 17}") for i in range(120)]
    send_events(kafka, pipeline.events, first)
    assert len(read_records(kafka, pipeline.recommendations, 120, timeout=90, linger=0.5)) == 120

    w.stop()  # SIGTERM: the shutdown checkpoint holds everything learned
    assert "checkpointed at shutdown" in w.log_text()
    w.start()
    send_events(kafka, pipeline.events, [event(500, "u-probe", "i-1")])  # a first event starts the generation
    assert len(read_records(kafka, pipeline.recommendations, 121, timeout=60, linger=0.5)) >= 121
    assert metric(w, "streamrec_unlearned_events_total") == 0

    second = [event(1000 + i, USERS[i % 6], f"i-{i % 13}") for i in range(120)]
    send_events(kafka, pipeline.events, second)
    assert len(read_records(kafka, pipeline.recommendations, 241, timeout=90, linger=0.5)) >= 241
    deadline = time.monotonic() + 60
    while committed(kafka, pipeline.app_id, pipeline.events, pipeline.partitions) < 241:
        assert time.monotonic() < deadline, "the offsets were not committed"
        time.sleep(0.5)
    w.kill9()
    w.start()
    send_events(kafka, pipeline.events, [event(2000, "u-probe", "i-2")])
    read_records(kafka, pipeline.recommendations, 242, timeout=60, linger=0.5)
    lost = metric(w, "streamrec_unlearned_events_total")
    assert lost == 120, lost  # the 120 committed events after the shutdown checkpoint
    assert any("behind the committed offsets" in line for line in w.log_lines(("WARNING",)))
    for u in USERS:  # the states lost nothing
        _, body = w.get(f"/users/{u}/state")
        assert orjson.loads(body)["counts"]["click"] == 40
