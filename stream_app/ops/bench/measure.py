"""Benchmark measurements: collect recommendations, and turn records into rates, latencies, gaps.

* **Throughput** comes from the output records' own timestamps (``CreateTime``, set by the
  producing client on this machine): records per second between the 5th and the 98th percentile
  of the output, so start-up and the tail are left out.
* **Latency** of one event is the wall-clock time from just before the load producer sent it to
  the moment a consumer here received its recommendation (matched by ``event_id``): everything
  a downstream reader waits for, broker hops included.
* **Output gaps** use each recommendation's ``generated_at`` (the worker's clock, sub-millisecond).

>>> steady_rate([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], lo=0.0, hi=1.0)
100.0
>>> percentiles([1.0, 2.0, 3.0, 4.0])["p50_ms"]
2.5
>>> round(max_gap([0.0, 0.001, 0.004, 0.005]) * 1000, 6)
3.0
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from stream_app.kafka import KafkaConnection, KafkaTarget, aio_consumer, as_connection, kafka_consumer
from stream_app.ops.testbed import peak_rss  # noqa: F401  (part of this module's measurements)


@dataclass
class Received:
    """One record as the collector saw it."""

    recv: float
    """``time.time()`` when the consumer here had it."""
    ts_ms: int
    """The record's broker timestamp (CreateTime, ms)."""
    value: bytes


@dataclass
class Collector:
    """Reads every partition of ``topic`` in a background thread (no consumer group).

    ``from_end=True`` starts at the current end of each partition (only what comes next).
    """

    kafka: KafkaTarget
    topic: str
    from_end: bool = False
    records: list[Received] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> Collector:
        """Assign every partition and start reading; raises if the topic does not exist."""
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run(ready)), name=f"collect-{self.topic}",
                                        daemon=True)
        self._thread.start()
        ready.wait(60)
        if self.error is not None:
            self._thread.join(10)
            raise RuntimeError(str(self.error)) from self.error
        return self

    async def _run(self, ready: threading.Event) -> None:
        from aiokafka import TopicPartition

        consumer = aio_consumer(as_connection(self.kafka), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=5,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
        append = self.records.append
        try:
            await consumer.start()
            parts = await asyncio.to_thread(partitions_of, as_connection(self.kafka), self.topic)
            if not parts:
                raise RuntimeError(f"topic {self.topic!r} does not exist")
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            if self.from_end:
                await consumer.seek_to_end(*tps)
                for tp in tps:
                    await consumer.position(tp)
            else:
                await consumer.seek_to_beginning(*tps)
            ready.set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=50, max_records=5000)
                now = time.time()
                for recs in batches.values():
                    for r in recs:
                        append(Received(now, r.timestamp, r.value))
        except BaseException as exc:  # surfaced by start()/wait()/stop()
            self.error = exc
        finally:
            ready.set()
            await consumer.stop()

    @property
    def count(self) -> int:
        return len(self.records)

    def wait(self, expect: int, timeout: float, stall_s: float = 30.0) -> bool:
        """Block until ``expect`` records arrived; False on timeout or ``stall_s`` without progress."""
        deadline = time.monotonic() + timeout
        seen, progressed = -1, time.monotonic()
        while self.count < expect:
            if self.error is not None:
                raise RuntimeError(f"collector on {self.topic} failed: {self.error!r}")
            now = time.monotonic()
            if self.count != seen:
                seen, progressed = self.count, now
            if now > deadline or now - progressed > stall_s:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> list[Received]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.error is not None:
            raise RuntimeError(f"collector on {self.topic} failed: {self.error!r}")
        return self.records


def steady_rate(ts_ms: list[int] | np.ndarray, lo: float = 0.05, hi: float = 0.98) -> float:
    """Records per second between the ``lo`` and ``hi`` quantiles of the (sorted) timestamps."""
    t = np.sort(np.asarray(ts_ms, dtype=np.float64))
    n = len(t)
    if n < 3:
        return 0.0
    i, j = int(lo * (n - 1)), int(hi * (n - 1))
    span = (t[j] - t[i]) / 1000.0
    return round(float((j - i) / span), 1) if span > 0 else 0.0


def percentiles(ms: list[float] | np.ndarray) -> dict[str, Any]:
    a = np.asarray(ms, dtype=np.float64)
    if not len(a):
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None, "n": 0}
    q = np.percentile(a, [50, 90, 99, 99.9])
    return {"p50_ms": round(float(q[0]), 3), "p90_ms": round(float(q[1]), 3), "p99_ms": round(float(q[2]), 3),
            "p999_ms": round(float(q[3]), 3), "max_ms": round(float(a.max()), 3), "n": len(a)}


def max_gap(times_s: list[float] | np.ndarray) -> float:
    """Largest interval (s) between consecutive output times."""
    t = np.sort(np.asarray(times_s, dtype=np.float64))
    return float(np.diff(t).max()) if len(t) > 1 else 0.0


def parse(records: list[Received]) -> list[dict[str, Any]]:
    """Decode recommendation values, keeping the receive time and the record timestamp."""
    out = []
    for r in records:
        msg = orjson.loads(r.value)
        msg["_recv"] = r.recv
        msg["_ts_ms"] = r.ts_ms
        out.append(msg)
    return out


def drain_rate(recs: list[dict[str, Any]], need_deep: bool = True) -> dict[str, Any]:
    """Steady output rate of a backlog drain, counted from the first recommendation scored with
    the deep model (when ``need_deep``), so a worker still loading its model is not measured."""
    recs = sorted(recs, key=lambda m: m["_ts_ms"])
    start = 0
    if need_deep:
        start = next((k for k, m in enumerate(recs) if m["model_version"].get("deep")), len(recs))
    window = [m["_ts_ms"] for m in recs[start:]]
    return {"events_per_s": steady_rate(window), "recommendations": len(recs), "measured": len(window),
            "without_deep_model": start,
            "seconds": round((window[-1] - window[0]) / 1000.0, 3) if len(window) > 1 else 0.0}


def latency(recs: list[dict[str, Any]], send_times: dict[int, float], skip_s: float = 0.5) -> dict[str, Any]:
    """Event->recommendation latency percentiles (ms); events sent in the first ``skip_s`` are left out.

    Also splits each event's latency in three with the worker's own stamps (``generated_at``
    minus ``latency_ms`` is when the worker took the event): ``in`` = producer send to the worker
    taking it (Kafka, the consumer's fetch and buffers), ``worker`` = taking it to its list being
    ready (queueing for and scoring the micro-batch), ``out`` = list ready to received here
    (producer batching, Kafka, this consumer); and gives ``per_second`` figures by send time.
    """
    from stream_app.ops.bench.load import event_index

    if not send_times:
        return percentiles([])
    t_first = min(send_times.values())
    t0 = t_first + skip_s
    rows = []
    for m in recs:
        sent = send_times.get(event_index(m["event_id"]))
        if sent is None or sent < t0:
            continue
        took = m["generated_at"] - m["latency_ms"] / 1000.0
        rows.append((sent, (m["_recv"] - sent) * 1000.0, m["_ts_ms"] - sent * 1000.0, (took - sent) * 1000.0,
                     m["latency_ms"], (m["_recv"] - m["generated_at"]) * 1000.0))
    if not rows:
        return percentiles([])
    a = np.array(rows)
    out = percentiles(a[:, 1])
    out["record_timestamp"] = {k: v for k, v in percentiles(a[:, 2]).items() if k in ("p50_ms", "p99_ms")}
    out["parts"] = {name: {k: v for k, v in percentiles(a[:, col]).items() if k in ("p50_ms", "p99_ms", "max_ms")}
                    for name, col in (("in", 3), ("worker", 4), ("out", 5))}
    sec = np.floor(a[:, 0] - t_first).astype(int)
    out["per_second"] = [
        {"second": int(s_), "n": int((sec == s_).sum()),
         **{f"{name}_p50_ms": round(float(np.percentile(a[sec == s_, col], 50)), 1)
            for name, col in (("total", 1), ("in", 3), ("worker", 4))},
         "total_max_ms": round(float(a[sec == s_, 1].max()), 1)}
        for s_ in np.unique(sec)
    ]
    return out


def swap_gap(recs: list[dict[str, Any]], promoted_at: float, new_version: str, after_s: float = 0.5) -> dict[str, Any]:
    """Output gaps around a hot swap, from the recommendations' ``generated_at``.

    ``during``: from the promotion to ``after_s`` past the first recommendation of the new model
    (the load and check in a thread, and the swap itself); ``before``: a window of the same length
    just before the promotion. Returns the largest gap in each, in ms.
    """
    gen = np.array(sorted(m["generated_at"] for m in recs), dtype=np.float64)
    first_new = min((m["generated_at"] for m in recs if m["model_version"].get("deep") == new_version),
                    default=None)
    if first_new is None:
        return {"swapped": False, "gap_during_ms": None, "gap_before_ms": None}
    end = first_new + after_s
    length = end - promoted_at
    during = gen[(gen >= promoted_at) & (gen <= end)]
    before = gen[(gen >= promoted_at - length) & (gen < promoted_at)]
    return {"swapped": True, "seconds_to_serve": round(first_new - promoted_at, 3),
            "gap_during_ms": round(max_gap(during) * 1000.0, 3),
            "gap_before_ms": round(max_gap(before) * 1000.0, 3),
            "window_s": round(length, 3)}


def state_sizes(kafka: KafkaTarget, topic: str, timeout: float = 60.0) -> dict[str, Any]:
    """Bytes of state per user: the latest value of every key in a table's changelog topic."""
    from kafka import TopicPartition

    c = kafka_consumer(as_connection(kafka), group_id=None, enable_auto_commit=False,
                       auto_offset_reset="earliest", max_poll_records=10000)
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            return {"users": 0, "state_bytes_per_user": None}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning()
        ends = c.end_offsets(tps)
        latest: dict[bytes, int] = {}
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=200).values():
                for r in recs:
                    if r.value is None:
                        latest.pop(r.key, None)
                    else:
                        latest[r.key] = len(r.value)
    finally:
        c.close()
    sizes = np.array(list(latest.values()), dtype=np.float64)
    if not len(sizes):
        return {"users": 0, "state_bytes_per_user": None}
    keys = np.array([len(k) for k in latest], dtype=np.float64)
    return {"users": len(sizes), "state_bytes_per_user": round(float(sizes.mean()), 1),
            "state_bytes_p99": round(float(np.percentile(sizes, 99)), 1),
            "state_bytes_max": int(sizes.max()),
            "key_bytes_per_user": round(float(keys.mean()), 1)}


def partitions_of(conn: KafkaConnection, topic: str) -> set[int]:
    """The partitions of ``topic`` (an empty set when it does not exist); blocking."""
    client = kafka_consumer(conn, group_id=None, enable_auto_commit=False)
    try:
        return set(client.partitions_for_topic(topic) or ())
    finally:
        client.close()
