"""The reader of the shared topic: every worker learns the items' side from every worker's events.

Each worker reads all partitions of the shared topic (outside the consumer group: every worker
reads everything) from the positions of its last checkpoint, or from the beginning. Before the
worker scores its first event it catches up to the end the topic had when it started (bounded
by ``STREAMREC_SHARED_CATCHUP_S``), so a new or restarted worker starts with what the group
knows. Records are applied between micro-batches, on the event loop, a bounded number of
entries at a time; see :mod:`stream_app.core.sharing` for why each event counts once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition

from stream_app.broker.topics import ensure_topics
from stream_app.core.delivery import Output, delivered
from stream_app.core.metrics import WorkerMetrics
from stream_app.core.pipeline import Pipeline
from stream_app.core.sharing import VERSION, BadUpdate, PeerWeights, RankerWeights, decode, encode_weights
from stream_app.kafka import KafkaConnection, aio_consumer

log = logging.getLogger(__name__)

YIELD_EVERY = 2000
"""Entries applied between two yields to the event loop (so the scorer is never held up long)."""


Send = Callable[[bytes, bytes], Awaitable[Output]]


class SharedReader:
    def __init__(self, pipeline: Pipeline, conn: KafkaConnection, topic: str, partitions: int,
                 metrics: WorkerMetrics, catchup_s: float = 60.0, worker: str = "",
                 weights_interval_s: float = 10.0) -> None:
        self.pipeline = pipeline
        self.conn = conn
        self.topic = topic
        self.partitions = partitions
        self.metrics = metrics
        self.catchup_s = catchup_s
        self.ready = asyncio.Event()
        """Set once the reader has caught up with the topic's end at start (or gave up waiting)."""
        self.applied = 0
        self.duplicates = 0
        self.bad = 0
        self._since_yield = 0
        self.worker = worker
        self.peers = PeerWeights(worker, max_age_s=max(30.0, 6 * weights_interval_s))
        self._pairs_at = 0
        self.on_fatal: Callable[[str], None] | None = None
        """Called when the reader cannot go on (the worker must stop: serving without the group's item
        knowledge would quietly recommend worse); None: the error is raised."""

    async def wait_ready(self) -> None:
        await self.ready.wait()

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("topic=%s: the shared item knowledge reader failed", self.topic)
            if self.on_fatal is None:
                raise
            self.on_fatal(f"the reader of {self.topic} failed: {exc!r} (is STREAMREC_SHARED_TOPIC a topic with "
                          f"STREAMREC_EVENTS_PARTITIONS={self.partitions} partitions that this worker may read?)")

    async def _run(self) -> None:
        await asyncio.to_thread(ensure_topics, self.conn, {self.topic: self.partitions})
        consumer = aio_consumer(self.conn, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=20, max_partition_fetch_bytes=4 * 1024 * 1024)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, i) for i in range(self.partitions)]
            consumer.assign(tps)
            positions = self.pipeline.shared_positions
            for tp in tps:
                at = positions.get(tp.partition)
                if at is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, at)
            ends = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
            started = time.monotonic()
            log.info("shared item knowledge: reading %s from %s, catching up to %s", self.topic,
                     {p: positions.get(p, "start") for p in range(self.partitions)}, ends)
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    for rec in records:
                        await self.apply(tp.partition, rec)
                if not self.ready.is_set():
                    self._check_caught_up(ends, started)
        finally:
            self.ready.set()
            await consumer.stop()

    def _check_caught_up(self, ends: dict[int, int], started: float) -> None:
        positions = self.pipeline.shared_positions
        behind = {p: end - positions.get(p, 0) for p, end in ends.items() if positions.get(p, 0) < end}
        if not behind:
            log.info("shared item knowledge caught up in %.1f s: %d events learned, %d already known",
                     time.monotonic() - started, self.applied, self.duplicates)
            self.ready.set()
        elif time.monotonic() - started > self.catchup_s:
            log.warning("shared item knowledge is still %s records behind after %.0f s "
                        "(STREAMREC_SHARED_CATCHUP_S); scoring starts, the rest is learned while it runs",
                        sum(behind.values()), self.catchup_s)
            self.ready.set()

    async def apply(self, partition: int, rec: Any) -> None:
        """Learn one record (skip and count a malformed one), then move the position past it."""
        self.metrics.shared_bytes.labels("in").inc(len(rec.value or b""))
        try:
            up = decode(rec.value or b"")
        except BadUpdate as exc:
            self.bad += 1
            self.metrics.shared_bad.inc()
            log.warning("topic=%s partition=%d offset=%d: skipped a record: %s", self.topic, partition, rec.offset, exc)
        else:
            if isinstance(up, RankerWeights):
                self.peers.take(up, time.monotonic())
                self.pipeline.shared_positions[partition] = rec.offset + 1
                return
            n = self.pipeline.apply_shared(up)
            dup = len(up.entries) - n
            self.applied += n
            self.duplicates += dup
            if n:
                self.metrics.shared_entries.labels("applied").inc(n)
            if dup:
                self.metrics.shared_entries.labels("duplicate").inc(dup)
            if self.ready.is_set():
                self.metrics.shared_lag.observe(max(0.0, time.time() - up.sent_at))
            self._since_yield += len(up.entries)
        self.pipeline.shared_positions[partition] = rec.offset + 1
        if self._since_yield >= YIELD_EVERY:
            self._since_yield = 0
            await asyncio.sleep(0)

    async def share_weights(self, send: Send) -> None:
        """Publish this worker's reranker weights, then take the average of the group's (see
        :class:`~stream_app.core.sharing.PeerWeights`)."""
        ranker = self.pipeline.ranker
        own = ranker.weights()
        pairs = max(0, ranker.n_pairs - self._pairs_at)
        self._pairs_at = ranker.n_pairs
        rec = RankerWeights(VERSION, self.worker, own, pairs, time.time())
        merged = self.peers.merge(own, pairs, time.monotonic())
        if merged != own:
            ranker.set_weights(merged)
        error = await delivered(await send(f"ranker/{self.worker}".encode(), encode_weights(rec)))
        if error is not None:  # the next period publishes again
            log.warning("topic=%s: could not publish the reranker weights: %r", self.topic, error)
