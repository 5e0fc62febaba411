"""The ingest agent of a worker: thin wiring of the events topic, validation and the scorer.

Each record of ``events`` is taken as raw bytes and validated here, so nothing Faust could fail
to decode is silently acknowledged. Invalid records go to ``events-dlq`` with the reason; valid
ones are queued for the scorer, which applies them to the users' state idempotently (a micro-batch
at a time), publishes their recommendations and only then acknowledges them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from faust.types.tuples import Message

from schemas import InvalidEvent, decode_event
from stream_app.core.dlq import DlqReason, bounded, check_time
from stream_app.core.metrics import WorkerMetrics
from stream_app.core.offsets import OffsetTracker
from stream_app.core.pipeline import Pending
from stream_app.core.scorer import Scorer
from stream_app.settings import Settings
from stream_app.worker.outbox import Outbox
from stream_app.worker.readback import fetch_range, start_offsets, topic_facts
from stream_app.worker.topics import Topics

log = logging.getLogger(__name__)

YIELD_EVERY = 32
"""Records the ingest agent takes from a full stream buffer before it gives the event loop a turn
(taking a buffered record never suspends; thousands of them in a row held the loop 100 ms and more)."""


def _raise(reason: str) -> None:
    raise RuntimeError(reason)


class Ingest:
    """Validates each record of the events topic and queues it for the scorer, or dead-letters it."""

    def __init__(self, app: Any, settings: Settings, topics: Topics, scorer: Scorer, outbox: Outbox,
                 metrics: WorkerMetrics) -> None:
        self.app = app
        self.settings = settings
        self.topics = topics
        self.scorer = scorer
        self.outbox = outbox
        self.metrics = metrics
        self.offsets = OffsetTracker()
        self.stream: Any = None
        self.stop: Callable[[str], None] = _raise
        """What to do when the agent cannot go on without skipping records (the worker stops)."""
        self._starts: dict[str, Any] = {}

    async def run(self, stream: Any) -> None:
        """The agent's body: one record at a time, acknowledged by hand."""
        manual = stream.noack()
        self.stream = manual
        since_turn = 0
        async for event in manual.events():
            since_turn += 1
            if since_turn >= YIELD_EVERY:  # a buffered backlog never suspends the stream: give turns
                since_turn = 0
                await asyncio.sleep(0)
            msg = event.message
            generation = self.app.consumer_generation_id
            start = None
            if self.offsets.needs_start(msg.partition, generation):
                start = (await self.starts(generation)).get(msg.partition)
            if self.offsets.seen(msg.partition, msg.offset, generation):
                # handed to the scorer already in this assignment (read back after a skip, or
                # delivered twice by the consumer): once is enough
                self.metrics.duplicates.inc()
                await self.ack(event)
                continue
            skipped = self.offsets.observe(msg.partition, msg.offset, generation, start)
            if skipped is not None:
                await self.fill_gap(msg.topic, msg.partition, *skipped)
            await self.ingest_one(msg.key, msg.value, msg.topic, msg.partition, msg.offset, event)

    async def ingest_one(self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
                         handle: Any) -> None:
        """Validate one record: queue it for the scorer, or dead-letter it (and acknowledge it)."""
        received = time.perf_counter()
        try:
            try:
                ev = decode_event(value)
                if key is None or key != ev.user_id.encode():
                    raise InvalidEvent("record key must be the event's user_id (UTF-8)", DlqReason.BAD_KEY.code)
                check_time(ev.ts, time.time(), self.settings.max_future_s, self.settings.max_age_s)
            except InvalidEvent as exc:
                self.metrics.events.labels("invalid").inc()
                out = await self.dead_letter(key, value, topic, partition, offset, DlqReason.of(exc), str(exc))
                await self.scorer.acknowledge([out], [handle], self.ack)
                return
            self.metrics.events.labels("valid").inc()
            await self.scorer.put(Pending(ev, partition, offset, received=received, handle=handle))
        except Exception as exc:  # a bug must not stop the partition: dead-letter and go on
            log.exception("ingest failed: topic=%s partition=%d offset=%d", topic, partition, offset)
            self.metrics.events.labels("error").inc()
            out = await self.dead_letter(key, value, topic, partition, offset, DlqReason.INTERNAL,
                                         f"internal error while ingesting: {exc!r}")
            await self.scorer.acknowledge([out], [handle], self.ack)

    async def dead_letter(self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
                          reason: DlqReason, detail: str) -> Any:
        """Send a dead letter (its key and value bounded to what the producer takes); return the output."""
        self.metrics.dlq.labels(reason.code).inc()
        log.warning("dead-lettered topic=%s partition=%d offset=%d: %s", topic, partition, offset, detail[:2000])
        key, value, extra = bounded(key, value)
        headers = [
            ("error", detail[:4096].encode("utf-8", "replace")),
            ("error_code", reason.code.encode()),
            ("topic", topic.encode()),
            ("partition", str(partition).encode()),
            ("offset", str(offset).encode()),
            *extra,
        ]
        return await self.outbox.send(self.topics.dlq, key, value, headers)

    async def dead_letter_pending(self, p: Pending, reason: str) -> Any:
        """Dead-letter an event the scorer could not handle (a bug: the reason says which)."""
        msg = p.handle if isinstance(p.handle, Message) else p.handle.message
        return await self.dead_letter(msg.key, msg.value, msg.topic, msg.partition, msg.offset,
                                      DlqReason.INTERNAL, reason)

    def count_unlearned(self, starts: dict[int, int]) -> None:
        """Count (and say) the committed events of this worker's partitions its models never learned."""
        try:
            mine = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.topics.events_name}
        except Exception:  # no consumer (a test context): every partition with a start
            mine = set(starts)
        lost = self.scorer.pipeline.take_unlearned({p: o for p, o in starts.items() if p in mine})
        if lost:
            self.metrics.unlearned.inc(sum(lost.values()))
            log.warning("the online models are behind the committed offsets (partition: events not learned) %s: "
                        "the worker stopped without a checkpoint (killed?), or another worker processed the "
                        "partition meanwhile; those events are in the users' states but these models will not "
                        "learn them (a shorter STREAMREC_CHECKPOINT_INTERVAL_S loses less to a kill)", lost)

    async def check_topic(self) -> None:
        """Tell the pipeline which ``events`` topic this assignment reads (its Kafka topic id), so
        offsets of a deleted and recreated topic are not taken for replays; stop the worker when the
        topic has another partition count than the states are keyed by (a recreated topic with
        other partitions, or one a client created by accident with the broker's default)."""
        name, want = self.topics.events_name, self.settings.events_partitions
        try:
            ident, partitions = await asyncio.to_thread(topic_facts, self.settings.kafka_connection(), name)
        except Exception:
            log.warning("could not read the id of topic %s; a recreated events topic goes unnoticed until "
                        "the next rebalance", name, exc_info=True)
            return
        if partitions and partitions != want:
            self.stop(f"topic {name} now has {partitions} partitions, but the users' states are kept for "
                      f"{want} (STREAMREC_EVENTS_PARTITIONS): it was recreated with another count. Recreate it "
                      f"with {want} partitions, or start a new STREAMREC_APP_ID with the new count")
            return
        async with self.scorer.models_lock:  # the models' offsets may start over
            changed = self.scorer.pipeline.set_events_topic(ident)
        if changed:
            self.metrics.topic_changes.inc()

    async def starts(self, generation: int) -> dict[int, int]:
        """Where each events partition starts in this group generation (asked once per generation).

        Generation 0 means no consumer group (Faust's test_context): the first event sets the start.
        """
        if generation <= 0:
            return {}
        if self._starts.get("generation") != generation:
            s = self.settings
            try:
                found = await asyncio.to_thread(start_offsets, s.kafka_connection(), s.app_id,
                                                self.topics.events_name, s.events_partitions)
            except Exception:
                log.warning("could not read the committed offsets of generation %d; skipped records at "
                            "the start of a partition go unnoticed until the next rebalance", generation,
                            exc_info=True)
                found = {}
            self._starts.update(generation=generation, starts=found)
            await self.check_topic()
            async with self.scorer.models_lock:  # the models' offsets move up to the commits
                self.count_unlearned(found)
        starts: dict[int, int] = self._starts["starts"]
        return starts

    async def fill_gap(self, topic: str, partition: int, first: int, end: int) -> None:
        """Read the records the consumer skipped straight from the broker and ingest them, in order."""
        log.warning("consumer skipped offsets %d..%d of topic=%s partition=%d; reading them from the broker",
                    first, end - 1, topic, partition)
        deadline = time.monotonic() + self.settings.output_retry_s
        wait = 0.2
        while True:
            try:
                records = await asyncio.to_thread(fetch_range, self.settings.kafka_connection(), topic, partition,
                                                  first, end)
                break
            except Exception as exc:
                if time.monotonic() + wait > deadline:
                    # never go on past offsets that were not processed: stop; the restart replays them
                    self.stop(f"could not read the skipped offsets {first}..{end - 1} of topic={topic} "
                              f"partition={partition} within {self.settings.output_retry_s:.0f}s: {exc!r}")
                    raise
                log.warning("reading the skipped offsets %d..%d of topic=%s partition=%d failed (%r); "
                            "trying again in %.1fs", first, end - 1, topic, partition, exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)
        self.metrics.gap_records.inc(len(records))
        for r in records:
            handle = Message(r.topic, r.partition, r.offset, r.timestamp / 1000.0, r.timestamp_type,
                             list(r.headers or []), r.key, r.value, None)
            self.app.consumer.track_message(handle)  # pending until the scorer acknowledges it, like the others
            await self.ingest_one(r.key, r.value, r.topic, r.partition, r.offset, handle)

    async def send_recommendation(self, key: bytes, value: bytes) -> Any:
        return await self.outbox.send(self.topics.recommendations, key, value)

    async def ack(self, handle: Any) -> None:
        """Acknowledge a record: a stream event, or a record read back by :meth:`fill_gap`."""
        if isinstance(handle, Message):
            self.app.consumer.ack(handle)
        elif self.stream is not None:
            await self.stream.ack(handle)
