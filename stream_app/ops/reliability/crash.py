"""Scenarios 1 and 2: kill -9 the worker under load, and restart the broker under load.

Both end the same way: every event in the log must have a recommendation, and every user's
counts must equal a replay of the events topic (lost and double-applied updates are counted).

Run against a broker (not a doctest)::

    figures = crash_scenario("127.0.0.1:9092", Path("/tmp/rel"), crashes=3)
    figures["lost_updates"], figures["recovery_s"]["p95"]
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from stream_app.core.stats import percentile
from stream_app.kafka import KafkaTarget
from stream_app.ops.reliability.harness import (
    Feeder,
    Topics,
    WorkerProc,
    compare_state,
    expected_counts,
    read_records,
    wait_for_ids,
)

Log = Callable[[str], None]
REBALANCE_LINE = "Executing _on_partitions_assigned"


def _log_events(bootstrap: KafkaTarget, topics: Topics, expect: int) -> list[dict[str, Any]]:
    """The valid events as the broker stores them (the log a replay starts from), each with its
    ``_partition`` and ``_offset``; a record read twice counts once."""
    out, seen = [], set()
    for r in read_records(bootstrap, topics.events, expect, timeout=60, linger=1.0):
        if (r.partition, r.offset) in seen:
            continue
        seen.add((r.partition, r.offset))
        try:
            ev = orjson.loads(r.value)
        except orjson.JSONDecodeError:
            continue
        ev["_partition"], ev["_offset"] = r.partition, r.offset
        out.append(ev)
    return out


def diagnose(example: dict[str, Any], logged: list[dict[str, Any]], recommended: set[str]) -> dict[str, Any]:
    """What a mismatched user's state is missing or has twice, against the log.

    The state's ``last_offset`` says which of the user's events it should hold (every one at or
    below it, on the user's partition): the events after it are missing from the state, and
    whether they got a recommendation tells a worker that never saw them (none) from a state
    that lost them after they were processed (a recommendation was published).

    >>> log = [{"user_id": "u", "type": "view", "_partition": 0, "_offset": o, "event_id": f"e{o}"} for o in (3, 5, 9)]
    >>> diagnose({"user": "u", "expected": {"view": 3}, "observed": {"view": 2}, "last_offset": 5}, log, {"e9"})
    {'user': 'u', 'expected': {'view': 3}, 'observed': {'view': 2}, 'last_offset': 5, 'log_offsets': [3, 5, 9], 'after_last_offset': [9], 'after_last_offset_recommended': 1, 'observed_equals_log_up_to_last_offset': True}
    """
    mine = [e for e in logged if e["user_id"] == example["user"]]
    last = example.get("last_offset")
    upto = [e for e in mine if last is not None and e["_offset"] <= last]
    after = [e for e in mine if last is None or e["_offset"] > last]
    prefix = {t: 0 for t in example["expected"]}
    for e in upto:
        prefix[e["type"]] = prefix.get(e["type"], 0) + 1
    return {**example, "log_offsets": [e["_offset"] for e in mine][-20:],
            "after_last_offset": [e["_offset"] for e in after][:20],
            "after_last_offset_recommended": sum(e["event_id"] in recommended for e in after),
            "observed_equals_log_up_to_last_offset": prefix == example["observed"]}


def verify(bootstrap: KafkaTarget, topics: Topics, worker: WorkerProc, feeder: Feeder) -> dict[str, Any]:
    logged = _log_events(bootstrap, topics, len(feeder.sent))
    logged_ids = {e["event_id"] for e in logged}
    got, n_msgs = wait_for_ids(bootstrap, topics.recommendations, logged_ids, timeout=180)
    state = compare_state([worker], expected_counts(logged), timeout=30)
    if state["examples"]:
        state["examples"] = [diagnose(x, logged, got) for x in state["examples"]]
        state["worker_warnings"] = worker.log_lines(("WARNING", "ERROR"))[-15:]
    warnings = worker.log_lines(("WARNING",))
    return {
        "consumer_skips_repaired": sum("consumer skipped offsets" in line for line in warnings),
        "commits_held_back_logged": sum("commit held back" in line for line in warnings),
        "events_sent": len(feeder.sent),
        "events_acked": len(feeder.acked),
        "events_send_failed": len(feeder.failed),
        "events_in_log": len(logged),
        "acked_but_missing_from_log": len(feeder.acked - logged_ids),
        "events_without_recommendation": len(logged_ids - got),
        "acked_without_recommendation": len(feeder.acked - got),
        "recommendation_messages": n_msgs,
        "duplicate_recommendations": n_msgs - len(got & logged_ids),
        **state,
    }


def wait_scored(worker: WorkerProc, since: float, timeout: float = 180.0) -> float:
    """Seconds from ``since`` until the (re)started worker has published a recommendation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = worker.health()
        if h and h.get("scored", 0) > 0:
            return time.time() - since
        if not worker.alive:
            raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"worker published nothing within {timeout:.0f}s:\n{worker.log_tail()}")


def crash_scenario(bootstrap: KafkaTarget, root: Path, crashes: int = 50, rate: float = 200.0, n_users: int = 200,
                   partitions: int = 4, seed: int = 0, log: Log = print, membership: str = "dynamic") -> dict[str, Any]:
    """Kill -9 the worker ``crashes`` times at random points while events stream at ``rate``/s.

    ``membership="static"`` gives the worker a ``STREAMREC_INSTANCE_ID`` (kept across its restarts).
    """
    if membership not in ("static", "dynamic"):
        raise ValueError(f"membership must be 'static' or 'dynamic', got {membership!r}")
    topics = Topics()
    topics.create(bootstrap, partitions)
    env = {"STREAMREC_BATCH_WAIT_MS": "1", "STREAMREC_INSTANCE_ID": "crash-worker" if membership == "static" else ""}
    w = WorkerProc(bootstrap, topics, root, "crash", partitions, **env).start()
    feeder = Feeder(bootstrap, topics.events, rate, n_users=n_users, seed=seed)
    feeder.start()
    rng = random.Random(seed)
    recoveries: list[float] = []
    t0 = time.monotonic()
    try:
        wait_scored(w, time.time())
        for k in range(crashes):
            time.sleep(rng.uniform(0.3, 4.0))  # a random point in the stream
            killed = w.kill9()
            w.start()
            recoveries.append(wait_scored(w, killed))
            log(f"crash {k + 1}/{crashes}: first recommendation {recoveries[-1]:.2f}s after kill -9")
        time.sleep(1.0)
        feeder.finish()
        figures = verify(bootstrap, topics, w, feeder)
    finally:
        feeder.finish()  # idempotent; stops the producer if anything above failed
        w.stop()
    figures.update(
        crashes=crashes, rate_events_s=rate, partitions=partitions, seconds=round(time.monotonic() - t0, 1),
        membership=membership,
        recovery_s={"p50": _r(percentile(recoveries, 50)), "p95": _r(percentile(recoveries, 95)),
                    "max": _r(max(recoveries, default=None))},
    )
    return figures


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _free_pair() -> int:
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port pair for a private broker")


def broker_restart_scenario(cache_dir: Path, root: Path, rate: float = 200.0, n_users: int = 200,
                            partitions: int = 4, before_s: float = 5.0, after_s: float = 10.0,
                            log: Log = print) -> dict[str, Any]:
    """Stop and restart a private broker while a worker consumes and events stream.

    The broker is private (own port and data folder) so the restart disturbs nothing else.
    """
    from stream_app import broker

    data = Path(root) / "kafka-restart"
    port = _free_pair()
    broker.up("127.0.0.1", port, data, cache_dir, {}, timeout=180)
    bootstrap = f"127.0.0.1:{port}"
    w = None
    try:
        topics = Topics()
        topics.create(bootstrap, partitions)
        w = WorkerProc(bootstrap, topics, root, "brk", partitions).start()
        feeder = Feeder(bootstrap, topics.events, rate, n_users=n_users, seed=1)
        feeder.start()
        try:
            wait_scored(w, time.time())
            time.sleep(before_s)
            t_down = time.time()
            broker.down(data)
            stopped = time.time()
            log(f"broker stopped in {stopped - t_down:.1f}s; starting it again")
            broker.up("127.0.0.1", port, data, cache_dir, {}, timeout=180)
            t_up = time.time()
            log(f"broker back after {t_up - t_down:.1f}s")
            scored_at_up = (w.health() or {}).get("scored", 0)
            resumed = None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and w.alive:
                h = w.health()
                if h and h.get("scored", 0) > scored_at_up:
                    resumed = time.time() - t_up
                    break
                time.sleep(0.1)
            time.sleep(after_s)
        finally:
            feeder.finish()
        figures = verify(bootstrap, topics, w, feeder)
        figures.update(
            broker_down_s=round(t_up - t_down, 1), worker_alive=w.alive, worker_restarts=w.starts - 1,
            worker_resumed_s_after_broker_up=_r(resumed), rate_events_s=rate,
        )
        return figures
    finally:
        if w is not None:
            w.stop()
        broker.down(data)
