"""What every reliability scenario needs: isolated topics, worker processes it can kill, a
rate-controlled producer that remembers what the broker acknowledged, and the checks that compare
per-user state with a replay of the log.

>>> t = Topics("abc")
>>> t.events, t.app_id
('rel-abc-events', 'rel-abc')
>>> expected_counts([{"user_id": "u", "type": "click"}, {"user_id": "u", "type": "view"}])["u"]
{'view': 1, 'click': 1, 'add_to_cart': 0, 'purchase': 0}
>>> round(slope([0, 1, 2, 3], [1.0, 3.0, 5.0, 7.0]), 6)
2.0
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from schemas import EVENT_TYPES
from stream_app.kafka import KafkaConnection, KafkaTarget, as_connection, kafka_consumer
from stream_app.ops.testbed import TEST_SETTINGS, TopicNames, produce, producer, read_records, worker_env
from stream_app.ops.testbed import WorkerProc as _Worker

__all__ = ["Feeder", "LagProbe", "Topics", "WorkerProc", "compare_state", "expected_counts", "make_event",
           "produce", "read_records", "recommended_ids", "slope", "wait_for_ids"]


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (0.0 with fewer than two points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return 0.0 if den == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


@dataclass(frozen=True)
class Topics(TopicNames):
    """Topic names and consumer group of one scenario run (nothing else on the broker sees them)."""

    name: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def prefix(self) -> str:
        return f"rel-{self.name}"


class WorkerProc(_Worker):
    """A ``streamrec worker`` process on ``topics``; restartable on the same data folder.

    >>> w = WorkerProc("127.0.0.1:9092", Topics("abc"), Path("/tmp/r"), "w1", 2, STREAMREC_LOG_LEVEL="error")
    >>> w.env["STREAMREC_DATA_DIR"], w.env["STREAMREC_LOG_LEVEL"], w.log_path.name
    ('/tmp/r/abc-w1', 'error', 'abc-w1.log')
    """

    def __init__(self, bootstrap: KafkaTarget, topics: Topics, root: Path, name: str = "w1", partitions: int = 4,
                 **env: str) -> None:
        self.root = Path(root)
        base = self.root / f"{topics.name}-{name}"
        broker = bootstrap if isinstance(bootstrap, KafkaConnection) else f"kafka://{bootstrap}"
        super().__init__(name, worker_env(broker, topics, partitions, base,
                                          self.root / f"{topics.name}-registry", **{**TEST_SETTINGS, **env}),
                         base.with_name(base.name + ".log"))


def make_event(run: str, i: int, rng: random.Random, n_users: int, n_items: int, ts0: float = 1.7e9) -> dict[str, Any]:
    return {"event_id": f"{run}-{i}", "user_id": f"u-{rng.randrange(n_users)}",
            "item_id": f"i-{int(n_items * rng.random() ** 2)}",
            "type": rng.choices(EVENT_TYPES, weights=(6, 3, 1, 1))[0], "ts": ts0 + i * 0.01}


class Feeder(threading.Thread):
    """Produces generated events at ``rate()`` per second until stopped (or ``limit`` reached).

    ``sent`` lists every event handed to the producer; ``acked`` the event ids the broker
    acknowledged (acks=all); ``failed`` the ids whose send failed for good.
    """

    def __init__(self, bootstrap: KafkaTarget, topic: str, rate: Callable[[float], float] | float, n_users: int = 200,
                 n_items: int = 2000, seed: int = 0, limit: int | None = None,
                 make: Callable[[str, int, random.Random], dict[str, Any]] | None = None, **producer_kw: Any) -> None:
        super().__init__(daemon=True)
        self.n_users, self.n_items, self.limit = n_users, n_items, limit
        self.make = make if make is not None else (
            lambda run, i, rng: make_event(run, i, rng, self.n_users, self.n_items))
        """Builds event ``i`` of the run (default :func:`make_event` over ``n_users`` and ``n_items``)."""
        kw = dict(retries=2**31 - 1, delivery_timeout_ms=180_000, max_block_ms=180_000, reconnect_backoff_max_ms=1000)
        self.producer = producer(bootstrap, **{**kw, **producer_kw})
        self.topic = topic
        self.rate = rate if callable(rate) else (lambda _t, r=float(rate): r)
        self.rng = random.Random(seed)
        self.run_id = uuid.uuid4().hex[:6]
        self.sent: list[dict[str, Any]] = []
        self.acked: set[str] = set()
        self.failed: dict[str, str] = {}
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def _on_ok(self, eid: str) -> Callable[[Any], None]:
        return lambda _md: self.acked.add(eid)

    def _on_err(self, eid: str) -> Callable[[BaseException], None]:
        return lambda exc: self.failed.__setitem__(eid, repr(exc))

    def run(self) -> None:
        try:
            start = time.monotonic()
            due = 0.0  # events owed by now, integrated over the rate
            last = start
            while not self._halt.is_set() and (self.limit is None or len(self.sent) < self.limit):
                now = time.monotonic()
                due += self.rate(now - start) * (now - last)
                last = now
                while len(self.sent) < int(due) and not self._halt.is_set():
                    ev = self.make(self.run_id, len(self.sent), self.rng)
                    fut = self.producer.send(self.topic, key=ev["user_id"].encode(), value=orjson.dumps(ev))
                    fut.add_callback(self._on_ok(ev["event_id"])).add_errback(self._on_err(ev["event_id"]))
                    self.sent.append(ev)
                    if self.limit is not None and len(self.sent) >= self.limit:
                        break
                time.sleep(0.005)
        except BaseException as exc:  # surfaced by finish()
            self.error = exc

    def finish(self, timeout: float = 180.0) -> None:
        """Stop producing, wait for every outstanding acknowledgement, close the producer (idempotent)."""
        if getattr(self, "_finished", False):
            return
        self._finished = True
        self._halt.set()
        self.join(timeout)
        self.producer.flush(timeout)
        self.producer.close(10)
        if self.error is not None:
            raise RuntimeError(f"the event producer failed: {self.error!r}")


def recommended_ids(bootstrap: KafkaTarget, topic: str, expect: int, timeout: float = 90.0) -> tuple[set[str], int]:
    """(event ids that got a recommendation, number of recommendation messages)."""
    recs = read_records(bootstrap, topic, expect, timeout)
    return {orjson.loads(r.value)["event_id"] for r in recs}, len(recs)


def wait_for_ids(bootstrap: KafkaTarget, topic: str, wanted: set[str], timeout: float = 120.0) -> tuple[set[str], int]:
    """Read recommendations until every id in ``wanted`` has one (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        got, n = recommended_ids(bootstrap, topic, len(wanted), timeout=max(1.0, deadline - time.monotonic()))
        if wanted <= got or time.monotonic() >= deadline:
            return got, n


def expected_counts(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per-user counts by event type: the state a replay of ``events`` must produce."""
    out: dict[str, dict[str, int]] = {}
    for ev in events:
        c = out.setdefault(ev["user_id"], dict.fromkeys(EVENT_TYPES, 0))
        c[ev["type"]] += 1
    return out


def compare_state(workers: list[WorkerProc], expected: dict[str, dict[str, int]],
                  timeout: float = 30.0) -> dict[str, Any]:
    """Compare each user's served counts with ``expected``; retried until equal or ``timeout``.

    Returns ``{"users", "users_mismatched", "lost_updates", "double_applied_updates", "examples"}``:
    lost = expected - observed where positive, double = observed - expected where positive.
    """
    deadline = time.monotonic() + timeout
    while True:
        lost = double = 0
        bad: list[Any] = []
        for user, counts in expected.items():
            observed = last_offset = None
            for w in workers:
                if not w.alive:
                    continue
                status, body = w.get(f"/users/{user}/state")
                if status == 200:
                    served = orjson.loads(body)
                    observed, last_offset = served["counts"], served.get("last_offset")
                    break
            observed = observed or dict.fromkeys(EVENT_TYPES, 0)
            for t in EVENT_TYPES:
                diff = observed.get(t, 0) - counts[t]
                lost += max(0, -diff)
                double += max(0, diff)
            if observed != counts:
                bad.append({"user": user, "expected": counts, "observed": observed, "last_offset": last_offset})
        if not bad or time.monotonic() >= deadline:
            return {"users": len(expected), "users_mismatched": len(bad), "lost_updates": lost,
                    "double_applied_updates": double, "examples": bad[:3]}
        time.sleep(1.0)


class LagProbe:
    """Consumer lag of a group on a topic: end offsets minus committed offsets, summed."""

    def __init__(self, bootstrap: KafkaTarget, group: str, topic: str) -> None:
        self.group, self.topic = group, topic
        # a consumer carrying the group id only reads its committed offsets; it never joins the group
        self.consumer = kafka_consumer(as_connection(bootstrap), group_id=group, enable_auto_commit=False)

    def lag(self) -> int | None:
        from kafka import TopicPartition

        try:
            parts = self.consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in parts]
            ends = self.consumer.end_offsets(tps)
            total = 0
            for tp in tps:
                c = self.consumer.committed(tp)
                total += max(0, ends[tp] - (c if c is not None and c >= 0 else 0))
            return total
        except Exception:  # the broker may be restarting: no reading this second
            return None

    def close(self) -> None:
        self.consumer.close()
