"""Reading the event log back: the whole ``events`` topic, or a dataset file, as model interactions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kafka import TopicPartition
from tqdm import tqdm

from models.base import Interaction
from schemas import InvalidEvent, decode_event
from stream_app.kafka import KafkaTarget, as_connection, kafka_consumer

log = logging.getLogger(__name__)


def read_topic(kafka: KafkaTarget, topic: str = "events", max_events: int = 0, progress: bool = True,
               kafka_kwargs: dict[str, Any] | None = None) -> list[Interaction]:
    """Every valid event now in ``topic`` (up to the end offsets seen at the start), sorted by time.

    ``kafka`` is the connection (a bare bootstrap string means plaintext); ``kafka_kwargs`` are
    extra consumer options. ``max_events`` keeps only the newest events (0 = all). Invalid records
    are skipped (the worker has already dead-lettered them).
    """
    conn = as_connection(kafka)
    consumer = kafka_consumer(conn, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                              **(kafka_kwargs or {}))
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise FileNotFoundError(f"topic {topic!r} does not exist at {conn.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        begin = consumer.beginning_offsets(tps)
        if max_events:
            per = max(1, max_events // len(tps))
            for tp in tps:
                consumer.seek(tp, max(begin[tp], end[tp] - per))
        else:
            consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if consumer.position(tp) < end[tp]}
        total = sum(end[tp] - consumer.position(tp) for tp in tps)
        out: list[Interaction] = []
        skipped = feedback = 0
        with tqdm(total=total, disable=not progress, unit="ev", desc=f"read {topic}") as bar:
            while remaining:
                batch = consumer.poll(timeout_ms=1000, max_records=5000)
                for tp, records in batch.items():
                    for r in records:
                        if r.offset >= end[tp]:
                            continue
                        try:
                            ev = decode_event(r.value)
                        except InvalidEvent:
                            skipped += 1
                            continue
                        if ev.is_feedback:  # impressions and rejections are not interactions
                            feedback += 1
                            continue
                        out.append(Interaction(ev.user_id, ev.item_id, ev.type, ev.ts))
                    bar.update(len(records))
                for tp in list(remaining):
                    if consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
        if skipped:
            log.info("skipped %d invalid records of %s", skipped, topic)
        if feedback:
            log.info("left out %d feedback events (impressions, dislikes, hides) of %s", feedback, topic)
        out.sort(key=lambda i: i.ts)
        return out
    finally:
        consumer.close()


def read_file(path: Path, fmt: str) -> list[Interaction]:
    """A dataset file as interactions, sorted by time (invalid rows raise with file and line)."""
    from stream_app.data.sources import read_events

    return [Interaction(e["user_id"], e["item_id"], e["type"], float(e["ts"]))
            for e in read_events(path, fmt) if isinstance(e, dict)]  # errors="raise": every row is a dict
