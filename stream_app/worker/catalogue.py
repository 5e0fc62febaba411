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

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from models.filters.catalogue import ItemCatalogue
from schemas.items import InvalidItem, decode_item
from stream_app.core.delivery import Output, delivered
from stream_app.core.dlq import DlqReason
from stream_app.core.metrics import WorkerMetrics
from stream_app.kafka import KafkaConnection
from stream_app.worker.topic_reader import TopicReader

log = logging.getLogger(__name__)

DeadLetter = Callable[[bytes | None, bytes | None, str, int, int, DlqReason, str], Awaitable[Any]]


class CatalogueReader(TopicReader):
    setting = "STREAMREC_ITEMS_TOPIC"
    max_records = 2000

    def __init__(self, catalogue: ItemCatalogue, conn: KafkaConnection, topic: str, partitions: int,
                 metrics: WorkerMetrics, catchup_s: float = 60.0,
                 configs: Mapping[str, Mapping[str, str]] | None = None) -> None:
        super().__init__(conn, topic, partitions, catchup_s, configs, fetch_max_wait_ms=50)
        self.catalogue = catalogue
        self.metrics = metrics
        self.dead_letter: DeadLetter | None = None
        self.owns: Callable[[int], bool] = lambda partition: False
        """Whether this worker holds the events partition of that number (it dead-letters for it)."""
        self.invalid = 0

    def after_batch(self) -> None:
        self.metrics.catalogue_items.set(len(self.catalogue))

    def caught_up(self, seconds: float) -> None:
        log.info("item catalogue loaded from %s in %.1f s: %d items", self.topic, seconds, len(self.catalogue))

    async def apply(self, partition: int, rec: Any) -> int:
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
            return 1
        if item is None:
            self.catalogue.remove(rec.key.decode("utf-8", "replace"))
            self.metrics.catalogue_updates.labels("removed").inc()
        else:
            self.catalogue.update(item)
            self.metrics.catalogue_updates.labels("updated").inc()
        if self.ready.is_set() and rec.timestamp:
            self.metrics.catalogue_lag.observe(max(0.0, time.time() - rec.timestamp / 1000.0))
        return 1
