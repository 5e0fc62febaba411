"""Reading offsets back from Kafka: where a partition starts for the group, and skipped records.

The ingest agent finds the offsets the consumer skipped (:class:`stream_app.core.offsets.OffsetTracker`)
and reads them here, straight from the broker, in a thread (these calls block).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from stream_app.core.state import topic_identity
from stream_app.kafka import KafkaConnection, kafka_admin, kafka_consumer

log = logging.getLogger(__name__)


def start_offsets(conn: KafkaConnection, group: str, topic: str, partitions: int) -> dict[int, int]:
    """Where each partition of ``topic`` starts for ``group``: its committed offset, or its first
    offset when nothing is committed (blocking: call it in a thread). Reads, never joins, the group.

    A committed offset past the partition's end cannot be resumed from (the topic was deleted and
    created again, or its log lost): the consumer starts such a partition at its first offset
    (``auto_offset_reset=earliest``), and so does this answer, with an error in the log.
    """
    from kafka import TopicPartition

    consumer = kafka_consumer(conn, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        first = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        out = {}
        for tp in tps:
            committed = consumer.committed(tp)
            if committed and committed > end[tp]:
                log.error("topic=%s partition=%d: group %s committed offset %d, past the partition's end %d: "
                          "the topic was recreated or lost data; the partition is read again from offset %d",
                          topic, tp.partition, group, committed, end[tp], first[tp])
                committed = None
            out[tp.partition] = committed if committed else first[tp]
        return out
    finally:
        consumer.close()


def topic_facts(conn: KafkaConnection, topic: str) -> tuple[int, int]:
    """``(identity, partitions)`` of ``topic`` now: :func:`~stream_app.core.state.topic_identity` of
    its Kafka topic id (0 if unknown) and its partition count (0 if it does not exist). Blocking."""
    admin = kafka_admin(conn)
    try:
        found = admin.describe_topics([topic])
    finally:
        admin.close()
    if not found or found[0].get("error_code"):
        return 0, 0
    return topic_identity(found[0].get("topic_id")), len(found[0].get("partitions") or [])


def fetch_range(conn: KafkaConnection, topic: str, partition: int, first: int, end: int,
                timeout_s: float = 30.0) -> list[Any]:
    """The records of ``topic``/``partition`` with ``first <= offset < end``, in offset order.

    A plain consumer outside any group (blocking: call it in a thread). Offsets that do not hold
    a record (transaction markers, compaction) are absent from the result.
    """
    from kafka import TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = kafka_consumer(conn, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        consumer.assign([tp])
        consumer.seek(tp, first)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read offsets {first}..{end - 1} of {topic}[{partition}] "
                                   f"within {timeout_s:.0f}s")
            for records in consumer.poll(timeout_ms=500, max_records=max(1, end - first)).values():
                out.extend(r for r in records if first <= r.offset < end)
        return out
    finally:
        consumer.close()
