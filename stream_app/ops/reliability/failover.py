"""Scenario 7: kill -9 the broker that leads the most partitions of a three-broker cluster under load.

Every topic has 3 replicas and ``min.insync.replicas`` 2, the producer waits for ``acks=all``: an
acknowledged event is on two brokers, so losing one loses nothing and the topics stay writable.
The worker is given every broker and must ride through the leader elections without restarting.
The broker comes back after ``down_s`` and catches up. Then, as in the crash scenario, every
acknowledged event must be in the log with a recommendation, and every user's counts must equal a
replay of the log. The figures: time from the kill to the first recommendation generated after it
(and until every partition answers again), leader election, catch-up of the restarted broker, lag.

Run it (needs Java and Maven, so not a doctest)::

    figures = failover_scenario(Path.home() / ".cache/streamrec/kafka", Path("/tmp/rel"))
    figures["acked_but_missing_from_log"], figures["first_recommendation_after_kill_s"]
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from stream_app import broker
from stream_app.broker.topics import admin
from stream_app.kafka import as_connection, kafka_consumer
from stream_app.ops.reliability.crash import verify, wait_scored
from stream_app.ops.reliability.harness import Feeder, LagProbe, Topics, WorkerProc

Log = Callable[[str], None]
REPLICAS, MIN_INSYNC = 3, 2


def free_block(n: int = 6, start: int = 39300, stop: int = 39900) -> int:
    """A port ``p`` such that ``p`` to ``p + n - 1`` are free on 127.0.0.1 (a cluster's brokers and controllers)."""
    for port in range(start, stop, n):
        ok = True
        for p in range(port, port + n):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError(f"no {n} free consecutive ports from {start} to {stop}")


def most_leading(partitions: list[dict[str, Any]]) -> tuple[int, list[tuple[str, int]]]:
    """The broker leading the most of ``partitions`` (the lowest id on a tie) and what it leads.

    >>> most_leading([{"topic": "e", "partition": 0, "leader": 2}, {"topic": "e", "partition": 1, "leader": 1},
    ...               {"topic": "r", "partition": 0, "leader": 2}])
    (2, [('e', 0), ('r', 0)])
    """
    counts: dict[int, int] = {}
    for p in partitions:
        if p["leader"] >= 0:
            counts[p["leader"]] = counts.get(p["leader"], 0) + 1
    victim = min(counts, key=lambda n: (-counts[n], n))
    return victim, [(p["topic"], p["partition"]) for p in partitions if p["leader"] == victim]


class RecommendationWatch(threading.Thread):
    """Reads every recommendation as it is published: (arrival time, partition, generated_at)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.seen: list[tuple[float, int, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        from kafka import TopicPartition

        c = kafka_consumer(as_connection(self.bootstrap), group_id=None, enable_auto_commit=False,
                           auto_offset_reset="earliest", reconnect_backoff_max_ms=500)
        try:
            c.assign([TopicPartition(self.topic, p) for p in sorted(c.partitions_for_topic(self.topic) or ())])
            while not self._halt.is_set():
                for tp, recs in c.poll(timeout_ms=100).items():
                    now = time.time()
                    for r in recs:
                        self.seen.append((now, tp.partition, float(orjson.loads(r.value)["generated_at"])))
        finally:
            c.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(15)

    def first_after(self, t: float, partitions: set[int] | None = None) -> dict[int, float]:
        """Per partition, seconds from ``t`` until a recommendation generated after ``t`` arrived."""
        out: dict[int, float] = {}
        for arrived, part, generated in self.seen:
            if generated > t and (partitions is None or part in partitions) and part not in out:
                out[part] = arrived - t
        return out


class LagSampler(threading.Thread):
    """The worker group's lag on the events topic, every ``every`` seconds: (wall time, lag)."""

    def __init__(self, bootstrap: str, group: str, topic: str, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.probe = LagProbe(bootstrap, group, topic)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            lag = self.probe.lag()
            if lag is not None:
                self.samples.append((time.time(), lag))

    def stop(self) -> None:
        self._halt.set()
        self.join(15)
        self.probe.close()

    def max_between(self, t0: float, t1: float = float("inf")) -> int | None:
        return max((lag for t, lag in self.samples if t0 <= t < t1), default=None)

    def timeline(self, origin: float, step: float = 2.0) -> list[tuple[float, int]]:
        """(seconds from ``origin``, lag): the largest sample of each ``step`` seconds."""
        buckets: dict[int, int] = {}
        for t, lag in self.samples:
            k = int((t - origin) // step)
            buckets[k] = max(lag, buckets.get(k, 0))
        return [(k * step, lag) for k, lag in sorted(buckets.items())]


def _wait_partitions(bootstrap: str, topics: list[str], done: Callable[[list[dict[str, Any]]], bool],
                     since: float, timeout: float = 120.0) -> float | None:
    """Seconds from ``since`` until ``done(partitions)`` holds (None on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if done(broker.describe_partitions(bootstrap, topics, timeout=3.0)):
                return time.time() - since
        except Exception:  # metadata unavailable while the cluster moves leaders: ask again
            pass
        time.sleep(0.2)
    return None


def _partitions(bootstrap: str, topics: list[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    """:func:`stream_app.broker.describe_partitions`, asked again while a broker does not know a topic yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return broker.describe_partitions(bootstrap, topics, timeout=3.0)
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.3)


def replication_of(bootstrap: str, topics: list[str]) -> dict[str, str]:
    """Per topic: ``"<replicas> / <min.insync.replicas>"`` (the fewest replicas of its partitions)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    parts = _partitions(bootstrap, topics)
    client = admin(bootstrap)
    try:
        found = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
    finally:
        client.close()
    configs = found.get("topic", {}) if isinstance(found, dict) else {}
    out: dict[str, str] = {}
    for t in topics:
        isr = (configs.get(t) or {}).get("min.insync.replicas", {})
        replicas = min((len(p["replicas"]) for p in parts if p["topic"] == t), default=0)
        out[t] = f"{replicas} / {isr['value'] if isinstance(isr, dict) and 'value' in isr else '?'}"
    return out


def failover_scenario(cache_dir: Path, root: Path, rate: float = 200.0, n_users: int = 200, partitions: int = 4,
                      before_s: float = 5.0, down_s: float = 15.0, after_s: float = 10.0, log: Log = print,
                      cluster: tuple[Path, int] | None = None) -> dict[str, Any]:
    """Kill -9 the broker leading the most partitions of a 3-broker cluster while events stream at ``rate``/s.

    ``cluster`` is a running cluster's ``(data folder, first port)`` to use (it is left running);
    without it a private cluster is started in ``root`` and stopped at the end.
    """
    root = Path(root)
    data, port = cluster if cluster is not None else (root / "kafka-failover", free_block())
    st = broker.up("127.0.0.1", port, data, cache_dir, {}, timeout=180, brokers=3)
    boot = st["bootstrap"]
    w: WorkerProc | None = None
    watch: RecommendationWatch | None = None
    lag: LagSampler | None = None
    try:
        topics = Topics()
        broker.ensure_topics(boot, topics.topics(partitions), configs={topics.items: {"cleanup.policy": "compact"}},
                             replication=REPLICAS, min_insync=MIN_INSYNC)
        w = WorkerProc(boot, topics, root, "failover", partitions, STREAMREC_BATCH_WAIT_MS="1",
                       STREAMREC_TOPIC_REPLICATION_FACTOR=str(REPLICAS),
                       STREAMREC_MIN_INSYNC_REPLICAS=str(MIN_INSYNC)).start()
        watch = RecommendationWatch(boot, topics.recommendations)
        lag = LagSampler(boot, topics.app_id, topics.events)
        feeder = Feeder(boot, topics.events, rate, n_users=n_users, seed=7)  # acks=all
        watch.start()
        lag.start()
        feeder.start()
        try:
            wait_scored(w, time.time())
            t_start = time.time()  # the worker scores: the quiet time before the kill starts
            time.sleep(before_s)
            served = [topics.events, topics.recommendations]
            victim, led = most_leading(_partitions(boot, served))
            t_kill = broker.kill_node(data, victim)
            log(f"killed broker {victim} (kill -9), leader of {len(led)} partitions: {led}")
            moved = _wait_partitions(boot, served, lambda ps: all(
                p["leader"] not in (-1, victim) and victim not in p["isr"] for p in ps), t_kill, timeout=down_s + 60)
            time.sleep(max(0.0, t_kill + down_s - time.time()))
            t_restart = time.time()
            broker.up("127.0.0.1", port, data, cache_dir, {}, timeout=180, brokers=3)
            t_back = time.time()
            log(f"broker {victim} back {t_back - t_kill:.1f}s after the kill")
            every = [*served, topics.changelog]
            in_sync = _wait_partitions(boot, every, lambda ps: all(len(p["isr"]) == REPLICAS for p in ps),
                                       t_back, timeout=120)
            time.sleep(after_s)
        finally:
            feeder.finish()
        figures = verify(boot, topics, w, feeder)
        victim_parts = {p for _t, p in led}
        first_any = watch.first_after(t_kill)
        first_led = watch.first_after(t_kill, victim_parts)
        figures.update(
            brokers=3, rate_events_s=rate, partitions=partitions, killed_broker=victim,
            killed_broker_led=", ".join(f"{t.removeprefix(topics.prefix + '-')}[{p}]" for t, p in led),
            replication=dict(zip(("events", "recommendations", "changelog"), replication_of(
                boot, [topics.events, topics.recommendations, topics.changelog]).values(), strict=True)),
            first_recommendation_after_kill_s=_r(min(first_any.values(), default=None)),
            first_recommendation_on_killed_leaders_partitions_s=_r(min(first_led.values(), default=None)),
            all_partitions_answering_s=_r(max(first_any.values()) if len(first_any) == partitions else None),
            first_recommendation_by_partition_s={str(p): _r(first_any.get(p)) for p in range(partitions)},
            leaders_moved_s=_r(moved), broker_down_s=round(t_back - t_kill, 1),
            broker_restart_s=round(t_back - t_restart, 1), replicas_in_sync_after_restart_s=_r(in_sync),
            # before the kill: the second half of the quiet time (the first still drains the worker's warm-up)
            lag_max_before_kill=lag.max_between(t_start + before_s / 2, t_kill), lag_max_after_kill=lag.max_between(t_kill),
            lag_samples=len(lag.samples), lag_timeline_from_kill=lag.timeline(t_kill),
            worker_alive=w.alive, worker_restarts=w.starts - 1,
        )
        return figures
    finally:
        for thread in (watch, lag):
            if thread is not None:
                thread.stop()
        if w is not None:
            w.stop()
        if cluster is None:
            broker.down(data)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)
