"""End-to-end through the real broker: events in, recommendations and dead letters out."""

from __future__ import annotations

import random

import orjson
import pytest

from stream_app.ops.testbed import event, producer, send_events
from stream_app.ops.testbed import read_records as read_all
from tests.integration.checks import users_with_wrong_counts
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

INVALID = [
    (b"u-bad", b"{not json"),
    (b"u-bad", b"\xff\xfe\x00garbage"),
    (b"u-bad", b""),
    (b"u-bad", None),  # tombstone
    (b"u-bad", orjson.dumps({"event_id": "x", "user_id": "u-bad", "item_id": "i", "type": "like", "ts": 1})),
    (b"u-bad", b'{"event_id":"x","user_id":"u-bad","item_id":"i","type":"click","ts":NaN}'),
    (b"u-bad", orjson.dumps({"event_id": "x", "user_id": "u-bad", "item_id": "i", "type": "click"})),
    (b"u-bad", orjson.dumps({"event_id": "x", "user_id": "u-bad", "item_id": "i" * 200, "type": "click", "ts": 1})),
    (b"u-bad", b'{"event_id":"x","user_id":"u-bad","item_id":"i","type":"click","ts":1,"pad":"'
     + b"a" * 70_000 + b'"}'),
    (b"someone-else", orjson.dumps({"event_id": "x", "user_id": "u-bad", "item_id": "i", "type": "click", "ts": 1})),
    (None, orjson.dumps({"event_id": "x", "user_id": "u-bad", "item_id": "i", "type": "click", "ts": 1})),
    (b"u-bad", orjson.dumps([1, 2, 3])),
]


def test_valid_events_get_one_recommendation_each_and_invalid_go_to_dlq(pipeline, workers):
    rng = random.Random(1)
    valid = [event(i, f"u-{rng.randrange(30)}", f"i-{rng.randrange(60)}",
                   rng.choice(["view", "click", "add_to_cart", "purchase"])) for i in range(400)]
    w = Worker(pipeline)
    workers.append(w.start())
    p = producer(pipeline.bootstrap)
    bad_iter = iter(INVALID)
    for i, ev in enumerate(valid):
        p.send(pipeline.events, key=ev["user_id"].encode(), value=orjson.dumps(ev))
        if i % 30 == 0:
            bad = next(bad_iter, None)
            if bad is not None:
                p.send(pipeline.events, key=bad[0], value=bad[1])
    for bad in bad_iter:
        p.send(pipeline.events, key=bad[0], value=bad[1])
    p.flush()

    recs = read_all(pipeline.bootstrap, pipeline.recommendations, len(valid), timeout=90)
    dlq = read_all(pipeline.bootstrap, pipeline.dlq, len(INVALID), timeout=30)
    assert len(recs) == len(valid), w.log_tail()
    assert len(dlq) == len(INVALID)

    by_id = {orjson.loads(r.value)["event_id"]: r for r in recs}
    assert set(by_id) == {ev["event_id"] for ev in valid}
    # dead letters keep the original bytes and key, and say why and where from
    originals = {(k, v) for k, v in INVALID}
    for r in dlq:
        headers = dict(r.headers)
        assert (r.key, r.value) in originals
        assert headers["error"] and headers["topic"] == pipeline.events.encode()
        assert headers["partition"].isdigit() and headers["offset"].isdigit()

    # never a purchased item, never the item just touched, at most K, no duplicates
    purchased: dict[str, set] = {}
    for ev in valid:
        rec = orjson.loads(by_id[ev["event_id"]].value)
        if ev["type"] == "purchase":
            purchased.setdefault(ev["user_id"], set()).add(ev["item_id"])
        items = [i["item_id"] for i in rec["items"]]
        assert len(items) <= 10 and len(items) == len(set(items))
        assert ev["item_id"] not in items
        assert not purchased.get(ev["user_id"], set()) & set(items)
        assert by_id[ev["event_id"]].key == ev["user_id"].encode()

    # the worker is still alive and serves the contract look-ups
    status, body = w.get("/users/u-1/state")
    assert status == 200
    state = orjson.loads(body)
    expected = {t: sum(1 for e in valid if e["user_id"] == "u-1" and e["type"] == t)
                for t in ("view", "click", "add_to_cart", "purchase")}
    assert state["counts"] == expected
    status, body = w.get("/users/u-1/recommendations")
    assert status == 200 and orjson.loads(body)["user_id"] == "u-1"
    assert w.get("/users/nobody/state")[0] == 404

    # feedback: the user hides an item of the last list, then reports what the client showed
    last = [i["item_id"] for i in orjson.loads(body)["items"]]
    t = max(e["ts"] for e in valid) + 1
    hide = {**event(900, "u-1", last[0], "hide"), "ts": t}
    shown = {**event(901, "u-1", last[1], "impression"), "ts": t + 1, "shown_items": last[1:4],
             "recommendation_id": orjson.loads(body)["recommendation_id"]}
    clicks = [{**event(902 + k, "u-1", f"i-{k}", "view"), "ts": t + 2 + k} for k in range(3)]
    send_events(pipeline.bootstrap, pipeline.events, [hide, shown, *clicks])
    recs = read_all(pipeline.bootstrap, pipeline.recommendations, len(valid) + 5, timeout=60)
    ids = {e["event_id"] for e in (hide, shown, *clicks)}
    after = {m["event_id"]: m for m in (orjson.loads(r.value) for r in recs) if m["event_id"] in ids}
    assert len(recs) == len(valid) + 5 and set(after) == ids  # one message per event, feedback too
    for msg in after.values():
        assert last[0] not in [i["item_id"] for i in msg["items"]]
    state = orjson.loads(w.get("/users/u-1/state")[1])
    assert state["hidden"] == [last[0]] and state["counts"]["view"] == expected["view"] + 3
    assert sum(state["counts"].values()) == sum(expected.values()) + 3  # feedback is not counted
    status, fresh = w.get("/users/u-1/recommendations?fresh=true&n=50")
    assert status == 200 and last[0] not in [i["item_id"] for i in orjson.loads(fresh)["items"]]


def test_kill9_mid_stream_loses_and_duplicates_nothing(pipeline, workers):
    rng = random.Random(2)
    n_users = 25
    events = [event(i, f"u-{rng.randrange(n_users)}", f"i-{rng.randrange(80)}",
                    rng.choice(["view", "view", "click", "add_to_cart", "purchase"])) for i in range(3000)]
    w = Worker(pipeline, "w1", STREAMREC_BATCH_WAIT_MS="1")
    workers.append(w.start())
    p = producer(pipeline.bootstrap)
    for i, ev in enumerate(events):
        p.send(pipeline.events, key=ev["user_id"].encode(), value=orjson.dumps(ev))
        if i == 1500:
            p.flush()
            # let it process part of the stream, then kill it without warning
            read_all(pipeline.bootstrap, pipeline.recommendations, 300, timeout=60)
            w.kill9()
    p.flush()
    w2 = Worker(pipeline, "w1")  # same data dir, as after a crash
    workers.append(w2.start())
    recs = read_all(pipeline.bootstrap, pipeline.recommendations, len(events), timeout=120)
    got_ids = {orjson.loads(r.value)["event_id"] for r in recs}
    assert got_ids == {e["event_id"] for e in events}, "every event gets a recommendation (duplicates allowed)"

    mismatched = users_with_wrong_counts(w2, events)
    assert not mismatched, mismatched[:3]


def test_state_and_recommendations_respect_purchases(pipeline, workers):
    events = [event(i, "u-buyer", f"i-{i % 5}", "purchase" if i % 5 == 0 else "click") for i in range(20)]
    events += [event(100 + i, f"u-{i}", f"i-{i % 5}", "click") for i in range(20)]
    w = Worker(pipeline)
    workers.append(w.start())
    send_events(pipeline.bootstrap, pipeline.events, events)
    recs = read_all(pipeline.bootstrap, pipeline.recommendations, len(events), timeout=60)
    assert len(recs) == len(events)
    for r in recs:
        msg = orjson.loads(r.value)
        if msg["user_id"] == "u-buyer" and msg["event_id"] != "e-0":
            assert "i-0" not in {i["item_id"] for i in msg["items"]}


def test_worker_refuses_an_events_topic_with_other_partitions(kafka, tmp_path):
    """An events topic created with 1 partition (say, auto-created by a producer) under a
    4-partition configuration: the worker exits at once with one line saying what to do."""
    import subprocess
    import sys

    from stream_app import broker
    from stream_app.ops.testbed import ROOT, IsolatedPipeline

    p = IsolatedPipeline(kafka, tmp_path, partitions=4)
    broker.ensure_topics(kafka, {p.events: 1})
    proc = subprocess.run([sys.executable, "-m", "stream_app", "worker"], cwd=ROOT, env=p.env("w1"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"topic {p.events!r} has 1 partition(s)" in err[0] and "STREAMREC_EVENTS_PARTITIONS" in err[0]
