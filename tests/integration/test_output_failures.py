"""Outputs that fail on the real broker: nothing acknowledged is lost.

The recommendations topic is made to refuse every record for a while (its ``max.message.bytes``
lowered below a message's size) while events flow. A short outage heals: the worker sends the
failed records again and every event gets its recommendation. A longer one than the worker's
retry window stops the worker with its own exit status, before it acknowledges what it could
not write; restarted, it replays those events and every one gets its recommendation, with
per-user state equal to the events produced.
"""

from __future__ import annotations

import random
import threading
import time

import orjson
import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from stream_app.kafka import KafkaConnection, kafka_admin
from stream_app.ops.testbed import event, producer
from stream_app.ops.testbed import read_records as read_all
from stream_app.worker.build import EXIT_OUTPUT_FAILED
from tests.integration.checks import users_with_wrong_counts
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

TYPES = ["view", "view", "click", "add_to_cart", "purchase"]


def set_max_message_bytes(bootstrap: str, topic: str, value: int | None) -> None:
    """Lower the topic's record size limit (None: back to the broker's default)."""
    admin = kafka_admin(KafkaConnection(bootstrap))
    try:
        if value is None:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": "1048588"})])
        else:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(value)})])
    finally:
        admin.close()


def stream(pipeline, events: list[dict], rate: float) -> threading.Thread:
    """Produce ``events`` at about ``rate`` per second in a thread."""

    def run() -> None:
        p = producer(pipeline.bootstrap)
        start = time.monotonic()
        for i, ev in enumerate(events):
            p.send(pipeline.events, key=ev["user_id"].encode(), value=orjson.dumps(ev))
            ahead = (i + 1) / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        p.flush()
        p.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def make_events(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [event(i, f"u-{rng.randrange(40)}", f"i-{rng.randrange(100)}", rng.choice(TYPES)) for i in range(n)]


def answered(pipeline, events: list[dict], timeout: float) -> set[str]:
    """The event ids that got a recommendation, once all did or ``timeout`` passed (duplicates allowed)."""
    wanted = {e["event_id"] for e in events}
    deadline = time.monotonic() + timeout
    got: set[str] = set()
    while True:
        left = max(1.0, deadline - time.monotonic())
        recs = read_all(pipeline.bootstrap, pipeline.recommendations, len(events), timeout=left, linger=1.0)
        got = {orjson.loads(r.value)["event_id"] for r in recs}
        if got >= wanted or time.monotonic() >= deadline:
            return got
        time.sleep(2.0)


def break_outputs_while_streaming(pipeline, workers, events: list[dict], rate: float,
                                  retry_s: str) -> tuple[Worker, threading.Thread]:
    """Start a worker and a stream of ``events``; two seconds in, make recommendations unwritable."""
    w = Worker(pipeline, "w1", STREAMREC_OUTPUT_RETRY_S=retry_s)
    workers.append(w.start())
    feeder = stream(pipeline, events, rate=rate)
    time.sleep(2.0)
    set_max_message_bytes(pipeline.bootstrap, pipeline.recommendations, 200)  # every message is larger
    return w, feeder


def test_a_short_output_outage_heals_and_loses_nothing(pipeline, workers):
    events = make_events(1500, seed=5)
    w, feeder = break_outputs_while_streaming(pipeline, workers, events, rate=150, retry_s="60")
    time.sleep(5.0)
    set_max_message_bytes(pipeline.bootstrap, pipeline.recommendations, None)
    feeder.join(60)

    got = answered(pipeline, events, timeout=120)
    assert got == {e["event_id"] for e in events}, (len(got), w.log_tail())
    assert w.alive, "a healed outage does not stop the worker"
    assert "sending them again" in w.log_text()  # the outage did hit the worker's outputs
    assert not users_with_wrong_counts(w, events)


def test_an_outage_longer_than_the_retry_window_stops_the_worker_and_the_restart_replays(pipeline, workers):
    events = make_events(1200, seed=6)
    w, feeder = break_outputs_while_streaming(pipeline, workers, events, rate=200, retry_s="3")
    deadline = time.monotonic() + 60
    while w.alive and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not w.alive, "the worker stops once an output cannot be written within the retry window"
    assert w.proc is not None and w.proc.returncode == EXIT_OUTPUT_FAILED, w.log_tail()
    set_max_message_bytes(pipeline.bootstrap, pipeline.recommendations, None)
    feeder.join(60)

    again = Worker(pipeline, "w1", STREAMREC_OUTPUT_RETRY_S="60")  # same data folder, as a supervisor would
    workers.append(again.start())
    got = answered(pipeline, events, timeout=120)
    assert got == {e["event_id"] for e in events}, (len(got), again.log_tail())
    assert not users_with_wrong_counts(again, events)


def test_produce_says_how_many_events_the_broker_refused(pipeline, tmp_path):
    import subprocess
    import sys

    from tests.paths import ROOT

    path = tmp_path / "events.jsonl"
    path.write_text("".join(orjson.dumps(e).decode() + "\n" for e in make_events(20, seed=7)))
    set_max_message_bytes(pipeline.bootstrap, pipeline.events, 100)  # every event is larger
    try:
        done = subprocess.run([sys.executable, "-m", "stream_app", "produce", str(path), "--format", "jsonl",
                               "--no-progress"], cwd=ROOT, env=pipeline.env("cli"), capture_output=True,
                              text=True, timeout=120)
    finally:
        set_max_message_bytes(pipeline.bootstrap, pipeline.events, None)
    assert done.returncode == 1, done.stderr[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("streamrec:")]
    assert len(lines) == 1 and "20 of 20 events were not written" in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
