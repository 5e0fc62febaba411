"""The reader of the ``items`` topic: every worker knows the whole item catalogue.

The topic is compacted by item id, so it holds the latest record of every item: each worker reads
all its partitions from the beginning when it starts (outside the consumer group) and catches up
with their end before it scores its first event, so an item set unavailable before a restart is
never recommended after it. Then it follows the topic; an update takes effect from the next
micro-batch on. A tombstone removes the item's metadata. An invalid record is logged and counted
by every worker and dead-lettered (to ``events-dlq``, with the reason, like an event) by the worker
that holds the events partition of the same number, so that one copy goes out; a worker that
restarts reads the topic again and may dead-letter it once more (same topic/partition/offset headers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import TopicPartition

from models.filters.catalogue import ItemCatalogue
from schemas.items import InvalidItem, decode_item
from stream_app.broker.topics import ensure_topics
from stream_app.core.delivery import Output, delivered
from stream_app.core.dlq import DlqReason
from stream_app.core.metrics import WorkerMetrics
from stream_app.kafka import KafkaConnection, aio_consumer

log = logging.getLogger(__name__)

DeadLetter = Callable[[bytes | None, bytes | None, str, int, int, DlqReason, str], Awaitable[Any]]


class CatalogueReader:
    def __init__(self, catalogue: ItemCatalogue, conn: KafkaConnection, topic: str, partitions: int,
                 metrics: WorkerMetrics, catchup_s: float = 60.0,
                 configs: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.catalogue = catalogue
        self.conn = conn
        self.topic = topic
        self.partitions = partitions
        self.metrics = metrics
        self.catchup_s = catchup_s
        self.configs = configs
        self.ready = asyncio.Event()
        """Set once the catalogue holds what the topic held at start (or the catch-up gave up waiting)."""
        self.dead_letter: DeadLetter | None = None
        self.owns: Callable[[int], bool] = lambda partition: False
        """Whether this worker holds the events partition of that number (it dead-letters for it)."""
        self.on_fatal: Callable[[str], None] | None = None
        self.invalid = 0

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("topic=%s: the item catalogue reader failed", self.topic)
            if self.on_fatal is None:
                raise
            self.on_fatal(f"the reader of {self.topic} failed: {exc!r} (is STREAMREC_ITEMS_TOPIC a topic with "
                          f"STREAMREC_EVENTS_PARTITIONS={self.partitions} partitions that this worker may read?)")

    async def _run(self) -> None:
        await asyncio.to_thread(ensure_topics, self.conn, {self.topic: self.partitions}, 30.0, self.configs)
        consumer = aio_consumer(self.conn, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, i) for i in range(self.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
            positions = {p: 0 for p in ends}
            started = time.monotonic()
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                for tp, records in batches.items():
                    for rec in records:
                        await self.apply(tp.partition, rec)
                        positions[tp.partition] = rec.offset + 1
                self.metrics.catalogue_items.set(len(self.catalogue))
                if not self.ready.is_set():
                    if all(positions[p] >= end for p, end in ends.items()):
                        log.info("item catalogue loaded from %s in %.1f s: %d items", self.topic,
                                 time.monotonic() - started, len(self.catalogue))
                        self.ready.set()
                    elif time.monotonic() - started > self.catchup_s:
                        log.warning("the item catalogue is still loading after %.0f s; scoring starts", self.catchup_s)
                        self.ready.set()
                    else:
                        # the records before a compacted topic's end may be gone: ask where it is
                        for tp in tps:
                            positions[tp.partition] = max(positions[tp.partition], await consumer.position(tp))
        finally:
            self.ready.set()
            await consumer.stop()

    async def apply(self, partition: int, rec: Any) -> None:
        try:
            item = decode_item(rec.value, rec.key)
        except InvalidItem as exc:
            self.invalid += 1
            self.metrics.catalogue_updates.labels("invalid").inc()
            if self.dead_letter is not None and self.owns(partition):
                out = await self.dead_letter(rec.key, rec.value, self.topic, partition, rec.offset,
                                             DlqReason.of(exc), f"invalid item record: {exc}")
                error = await delivered(out) if isinstance(out, Output) else None
                if error is not None:
                    log.error("topic=%s partition=%d offset=%d: the dead letter of an invalid item record "
                              "could not be written: %r", self.topic, partition, rec.offset, error)
            else:
                log.warning("topic=%s partition=%d offset=%d: invalid item record skipped: %s",
                            self.topic, partition, rec.offset, exc)
            return
        if item is None:
            self.catalogue.remove(rec.key.decode("utf-8", "replace"))
            self.metrics.catalogue_updates.labels("removed").inc()
        else:
            self.catalogue.update(item)
            self.metrics.catalogue_updates.labels("updated").inc()
        if self.ready.is_set() and rec.timestamp:
            self.metrics.catalogue_lag.observe(max(0.0, time.time() - rec.timestamp / 1000.0))
