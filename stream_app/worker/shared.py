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

from stream_app.core.delivery import Output, delivered
from stream_app.core.metrics import WorkerMetrics
from stream_app.core.pipeline import Pipeline
from stream_app.core.sharing import VERSION, BadUpdate, PeerWeights, RankerWeights, decode, encode_weights
from stream_app.kafka import KafkaConnection
from stream_app.worker.topic_reader import TopicReader

log = logging.getLogger(__name__)


Send = Callable[[bytes, bytes], Awaitable[Output]]


class SharedReader(TopicReader):
    setting = "STREAMREC_SHARED_TOPIC"

    def __init__(self, pipeline: Pipeline, conn: KafkaConnection, topic: str, partitions: int,
                 metrics: WorkerMetrics, catchup_s: float = 60.0, worker: str = "",
                 weights_interval_s: float = 10.0) -> None:
        super().__init__(conn, topic, partitions, catchup_s, fetch_max_wait_ms=20,
                         max_partition_fetch_bytes=4 * 1024 * 1024)
        self.pipeline = pipeline
        self.metrics = metrics
        self.applied = 0
        self.duplicates = 0
        self.bad = 0
        self.worker = worker
        self.peers = PeerWeights(worker, max_age_s=max(30.0, 6 * weights_interval_s))
        self._pairs_at = 0
        self.models_lock = asyncio.Lock()
        """Taken around every change to the pipeline's models (the worker passes the scorer's)."""

    def positions(self) -> dict[int, int]:
        return self.pipeline.shared_positions  # checkpointed with the state it produced

    def caught_up(self, seconds: float) -> None:
        log.info("shared item knowledge caught up in %.1f s: %d events learned, %d already known",
                 seconds, self.applied, self.duplicates)

    async def apply(self, partition: int, rec: Any) -> int:
        """Learn one record (skip and count a malformed one); the reader then moves past it."""
        self.metrics.shared_bytes.labels("in").inc(len(rec.value or b""))
        try:
            up = decode(rec.value or b"")
        except BadUpdate as exc:
            self.bad += 1
            self.metrics.shared_bad.inc()
            log.warning("topic=%s partition=%d offset=%d: skipped a record: %s", self.topic, partition, rec.offset, exc)
            return 1
        if isinstance(up, RankerWeights):
            self.peers.take(up, time.monotonic())
            return 1
        async with self.models_lock:
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
        return max(1, len(up.entries))

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
            async with self.models_lock:
                ranker.set_weights(merged)
        error = await delivered(await send(f"ranker/{self.worker}".encode(), encode_weights(rec)))
        if error is not None:  # the next period publishes again
            log.warning("topic=%s: could not publish the reranker weights: %r", self.topic, error)
