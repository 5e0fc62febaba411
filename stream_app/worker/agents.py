"""The ingest agent and the worker's background tasks: thin wiring of topics, tables and logic.

Each record of ``events`` is taken as raw bytes and validated here, so nothing Faust could fail
to decode is silently acknowledged. Invalid records go to ``events-dlq`` with the reason; valid
ones are queued for the scorer, which applies them to the users' state idempotently (a micro-batch
at a time), publishes their recommendations and only then acknowledges them.
"""

from __future__ import annotations

import asyncio
import logging
import time

from faust.types.tuples import Message

from schemas import InvalidEvent, decode_event
from stream_app.core import metrics
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.scorer import Scorer
from stream_app.settings import get_settings
from stream_app.worker.app import app
from stream_app.worker.checkpoints import CheckpointStore
from stream_app.worker.readback import OffsetTracker, fetch_range, start_offsets
from stream_app.worker.swap import ModelWatcher
from stream_app.worker.tables import user_state
from stream_app.worker.topics import DLQ, RECOMMENDATIONS, events_topic
from stream_app.worker.userstore import FaustRocksTable, UserStateStore

log = logging.getLogger(__name__)
settings = get_settings()

pipeline = Pipeline(
    top_k=settings.top_k,
    return_horizon_s=settings.return_horizon_s,
    popularity_half_life_s=settings.popularity_half_life_s,
    deep_pool=settings.deep_pool,
    deep_history=settings.deep_history,
)
checkpoints = CheckpointStore(settings.data_dir / "online" / "checkpoint.msgpack")
checkpoints.restore_into(pipeline)
watcher = ModelWatcher(pipeline, settings.registry_path)
_ingest_stream = None
offsets = OffsetTracker()
_starts_cache: dict = {}


class Outbox:
    """Where the agents' output records go: Faust's producer (buffered; flushed before each commit)."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list | None = None,
                   partition: int | None = None):
        return await app.producer.send(topic, key, value, partition, None, headers)


outbox = Outbox()


async def _send_state(topic: str, key: bytes, value: bytes, partition: int):
    return await outbox.send(topic, key, value, partition=partition)


store = UserStateStore(FaustRocksTable(user_state), user_state.changelog_topic.get_topic_name(), _send_state)
scorer = Scorer(pipeline, settings.batch_max, settings.batch_wait_ms, settings.queue_max, store=store,
                recent_max=settings.recent_max, purchased_max=settings.purchased_max)


def reason_category(reason: str) -> str:
    """A short, bounded label for the DLQ metric (the full reason goes in the record header)."""
    r = reason.lower()
    for needle, label in (
        ("tombstone", "empty"), ("empty value", "empty"), ("byte limit", "too_large"),
        ("utf-8", "malformed_json"), ("malformed", "malformed_json"), ("key", "bad_key"),
        ("internal", "internal"),
    ):
        if needle in r:
            return label
    return "schema"


async def dead_letter(key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
                      reason: str) -> None:
    metrics.DLQ.labels(reason_category(reason)).inc()
    log.warning("dead-lettered topic=%s partition=%d offset=%d: %s", topic, partition, offset, reason)
    headers = [
        ("error", reason.encode("utf-8", "replace")),
        ("topic", topic.encode()),
        ("partition", str(partition).encode()),
        ("offset", str(offset).encode()),
    ]
    await outbox.send(DLQ, key, value, headers)


@app.agent(events_topic, name="ingest")
async def ingest(stream):
    global _ingest_stream
    manual = stream.noack()
    _ingest_stream = manual
    async for event in manual.events():
        msg = event.message
        generation = app.consumer_generation_id
        start = None
        if offsets.needs_start(msg.partition, generation):
            start = (await _starts(generation)).get(msg.partition)
        if offsets.seen(msg.partition, msg.offset, generation):
            # handed to the scorer already in this assignment (read back after a skip, or
            # delivered twice by the consumer): once is enough
            metrics.DUPLICATES.inc()
            await _ack(event)
            continue
        skipped = offsets.observe(msg.partition, msg.offset, generation, start)
        if skipped is not None:
            await _fill_gap(msg.topic, msg.partition, *skipped)
        await _ingest_one(msg.key, msg.value, msg.topic, msg.partition, msg.offset, event)


async def _ingest_one(key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
                      handle) -> None:
    """Validate one record: queue it for the scorer, or dead-letter it (and acknowledge it)."""
    received = time.perf_counter()
    try:
        try:
            ev = decode_event(value)
            if key is None or key != ev.user_id.encode():
                raise InvalidEvent("record key must be the event's user_id (UTF-8)")
        except InvalidEvent as exc:
            metrics.EVENTS.labels("invalid").inc()
            await dead_letter(key, value, topic, partition, offset, str(exc))
            await _ack(handle)
            return
        metrics.EVENTS.labels("valid").inc()
        await scorer.put(Pending(ev, partition, offset, received=received, handle=handle))
    except Exception as exc:  # a bug must not stop the partition: dead-letter and go on
        log.exception("ingest failed: topic=%s partition=%d offset=%d", topic, partition, offset)
        metrics.EVENTS.labels("error").inc()
        await dead_letter(key, value, topic, partition, offset, f"internal error while ingesting: {exc!r}")
        await _ack(handle)


async def _starts(generation: int) -> dict[int, int]:
    """Where each events partition starts in this group generation (asked once per generation).

    Generation 0 means no consumer group (Faust's test_context): the first event sets the start.
    """
    if generation <= 0:
        return {}
    if _starts_cache.get("generation") != generation:
        try:
            found = await asyncio.to_thread(start_offsets, settings.bootstrap, settings.app_id,
                                            events_topic.get_topic_name(), settings.events_partitions,
                                            settings.kafka_client_kwargs())
        except Exception:
            log.warning("could not read the committed offsets of generation %d; skipped records at "
                        "the start of a partition go unnoticed until the next rebalance", generation,
                        exc_info=True)
            found = {}
        _starts_cache.update(generation=generation, starts=found)
    return _starts_cache["starts"]


async def _fill_gap(topic: str, partition: int, first: int, end: int) -> None:
    """Read the records the consumer skipped straight from the broker and ingest them, in order."""
    log.warning("consumer skipped offsets %d..%d of topic=%s partition=%d; reading them from the broker",
                first, end - 1, topic, partition)
    try:
        records = await asyncio.to_thread(fetch_range, settings.bootstrap, topic, partition, first, end,
                                          settings.kafka_client_kwargs())
    except Exception:
        log.exception("could not read the skipped offsets %d..%d of topic=%s partition=%d: they are "
                      "not processed now (a restart processes them if the committed offset is still "
                      "below them); check the broker connection", first, end - 1, topic, partition)
        return
    metrics.GAP_RECORDS.inc(len(records))
    for r in records:
        handle = Message(r.topic, r.partition, r.offset, r.timestamp / 1000.0, r.timestamp_type,
                         list(r.headers or []), r.key, r.value, None)
        app.consumer.track_message(handle)  # pending until the scorer acknowledges it, like the others
        await _ingest_one(r.key, r.value, r.topic, r.partition, r.offset, handle)


async def _send_recommendation(key: bytes, value: bytes):
    return await outbox.send(RECOMMENDATIONS, key, value)


async def _ack(handle) -> None:
    """Acknowledge a record: a stream event, or a record read back by :func:`_fill_gap`."""
    if isinstance(handle, Message):
        app.consumer.ack(handle)
    elif _ingest_stream is not None:
        await _ingest_stream.ack(handle)


async def _dead_letter_pending(p: Pending, reason: str) -> None:
    msg = p.handle if isinstance(p.handle, Message) else p.handle.message
    await dead_letter(msg.key, msg.value, msg.topic, msg.partition, msg.offset, reason)


def quiet_libraries(level_name: str) -> None:
    """Faust's worker leaves the root logger at DEBUG and filters in its handler, so every
    ``log.debug`` in aiokafka and Faust still builds a record (a sixth of the time of a busy
    worker). Set the levels on the loggers themselves."""
    level = logging.getLevelName(level_name.upper())
    level = level if isinstance(level, int) else logging.INFO
    logging.getLogger().setLevel(level)
    for name in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(name).setLevel(max(level, logging.INFO if name == "faust" else logging.WARNING))


@app.task
async def run_scorer() -> None:
    quiet_libraries(settings.log_level)
    await scorer.run(_send_recommendation, _ack, _dead_letter_pending)


@app.task
async def run_model_watcher() -> None:
    await watcher.run(settings.model_poll_s)


@app.timer(interval=settings.checkpoint_interval_s)
async def checkpoint_online_models() -> None:
    data = pipeline.checkpoint()  # on the loop, between batches: a consistent snapshot
    await asyncio.to_thread(checkpoints.write, data)
    metrics.CHECKPOINTS.inc()
    metrics.ONLINE_LEARNED.set(pipeline.ranker.version or 0)


@app.timer(interval=2.0)
async def update_gauges() -> None:
    pipeline.expire_returns()
    live = pipeline.live.snapshot()
    metrics.LIVE_HR.set(live["hr@10"])
    metrics.LIVE_NDCG.set(live["ndcg@10"])
    metrics.LIVE_CTR.set(live["ctr"])
    metrics.LIVE_CONVERSION.set(live["conversion"])
    metrics.RETURNING.set(live["returning_rate"])
    metrics.ONLINE_LEARNED.set(pipeline.ranker.version or 0)
    consumer = app.consumer
    try:
        assignment = consumer.assignment()
        for tp in assignment:
            if tp.topic != events_topic.get_topic_name():
                continue
            hw = consumer.highwater(tp)
            pos = await consumer.position(tp)
            if hw is not None and pos is not None:
                metrics.LAG.labels(str(tp.partition)).set(max(0, hw - pos))
    except Exception:  # lag is best effort while the consumer rebalances
        log.debug("consumer lag not available yet", exc_info=True)
