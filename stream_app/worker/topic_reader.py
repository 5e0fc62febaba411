"""A reader of every partition of one topic, outside the consumer group, that catches up before scoring.

Two topics are read this way by every worker: the item catalogue (``items``) and the shared item
knowledge (``item-knowledge``). Both need the same loop: make sure the topic exists, assign all its
partitions, seek each to where this worker stopped (or the beginning), note the ends the topic had
at start, apply records one by one, and set :attr:`TopicReader.ready` once every partition has
reached its end (or ``catchup_s`` passed: scoring then starts and the rest is applied while it
runs). A failure the reader cannot get past calls :attr:`TopicReader.on_fatal` (the worker stops)
rather than serving on without what the topic holds. Subclasses say what one record does
(:meth:`TopicReader.apply`) and where reading starts (:meth:`TopicReader.positions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import TopicPartition

from stream_app.broker.topics import ensure_topics
from stream_app.kafka import KafkaConnection, aio_consumer

log = logging.getLogger(__name__)

YIELD_EVERY = 2000
"""Units of work (records or entries, as :meth:`TopicReader.apply` counts them) between two yields
to the event loop, so the scorer is never held up long by a backlog."""


class TopicReader:
    setting = "the topic's setting"
    """The environment variable naming the topic (for the error that stops the worker)."""
    max_records = 500
    """Records taken per fetch."""

    def __init__(self, conn: KafkaConnection, topic: str, partitions: int, catchup_s: float = 60.0,
                 configs: Mapping[str, Mapping[str, str]] | None = None, **consumer: Any) -> None:
        self.conn = conn
        self.topic = topic
        self.partitions = partitions
        self.catchup_s = catchup_s
        self.configs = configs
        self.consumer_options = consumer
        self.ready = asyncio.Event()
        """Set once every partition reached the end it had at start (or the catch-up gave up waiting)."""
        self.on_fatal: Callable[[str], None] | None = None
        """Called when the reader cannot go on (the worker must stop); None: the error is raised."""
        self.replication: tuple[int | None, int | None] = (None, None)
        """Replication factor and min.insync.replicas the topic is created with if missing (None: auto)."""
        self._since_yield = 0
        self._positions: dict[int, int] = {}

    def positions(self) -> dict[int, int]:
        """Per partition, the next offset to read; a partition absent starts at the beginning. The
        reader moves it past each record it applied (the subclass may return a dict it checkpoints)."""
        return self._positions

    async def apply(self, partition: int, rec: Any) -> int:
        """Apply one record; return the units of work it took (for the yields to the loop)."""
        raise NotImplementedError

    def after_batch(self) -> None:
        """Called after the records of each fetch are applied."""

    def caught_up(self, seconds: float) -> None:
        """Called once, when the reader reached the topic's end it had at start."""
        log.info("topic=%s: caught up in %.1f s", self.topic, seconds)

    async def wait_ready(self) -> None:
        await self.ready.wait()

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("topic=%s: the reader failed", self.topic)
            if self.on_fatal is None:
                raise
            self.on_fatal(f"the reader of {self.topic} failed: {exc!r} (is {self.setting} a topic with "
                          f"STREAMREC_EVENTS_PARTITIONS={self.partitions} partitions that this worker may read?)")

    async def _run(self) -> None:
        rf, isr = self.replication
        await asyncio.to_thread(ensure_topics, self.conn, {self.topic: self.partitions}, 30.0, self.configs,
                                replication=rf, min_insync=isr)
        consumer = aio_consumer(self.conn, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                **self.consumer_options)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, i) for i in range(self.partitions)]
            consumer.assign(tps)
            positions = self.positions()
            for tp in tps:
                at = positions.get(tp.partition)
                if at is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, at)
            ends = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
            started = time.monotonic()
            log.info("topic=%s: reading from %s, catching up to %s", self.topic,
                     {p: positions.get(p, "start") for p in range(self.partitions)}, ends)
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                for tp, records in batches.items():
                    for rec in records:
                        self._since_yield += await self.apply(tp.partition, rec)
                        positions[tp.partition] = rec.offset + 1
                        if self._since_yield >= YIELD_EVERY:
                            self._since_yield = 0
                            await asyncio.sleep(0)
                self.after_batch()
                if not self.ready.is_set():
                    await self._check_caught_up(consumer, tps, ends, started)
        finally:
            self.ready.set()
            await consumer.stop()

    async def _check_caught_up(self, consumer: Any, tps: list[TopicPartition], ends: dict[int, int],
                               started: float) -> None:
        positions = self.positions()
        behind = [tp for tp in tps if positions.get(tp.partition, 0) < ends[tp.partition]]
        for tp in behind:  # records before the end may be gone (compaction, retention): ask where it is
            positions[tp.partition] = max(positions.get(tp.partition, 0), await consumer.position(tp))
        left = sum(max(0, ends[tp.partition] - positions.get(tp.partition, 0)) for tp in behind)
        if not left:
            self.caught_up(time.monotonic() - started)
            self.ready.set()
        elif time.monotonic() - started > self.catchup_s:
            log.warning("topic=%s: still %d records behind after %.0f s (STREAMREC_SHARED_CATCHUP_S); scoring "
                        "starts, the rest is read while it runs", self.topic, left, self.catchup_s)
            self.ready.set()
