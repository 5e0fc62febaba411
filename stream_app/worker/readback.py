"""Reading offsets back from Kafka: where a partition starts for the group, and skipped records.

The ingest agent finds the offsets the consumer skipped (:class:`stream_app.core.offsets.OffsetTracker`)
and reads them here, straight from the broker, in a thread (these calls block).
"""

from __future__ import annotations

import time
from typing import Any

from stream_app.kafka import KafkaConnection, kafka_consumer


def start_offsets(conn: KafkaConnection, group: str, topic: str, partitions: int) -> dict[int, int]:
    """Where each partition of ``topic`` starts for ``group``: its committed offset, or its first
    offset when nothing is committed (blocking: call it in a thread). Reads, never joins, the group."""
    from kafka import TopicPartition

    consumer = kafka_consumer(conn, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        first = consumer.beginning_offsets(tps)
        out = {}
        for tp in tps:
            committed = consumer.committed(tp)
            out[tp.partition] = committed if committed else first[tp]
        return out
    finally:
        consumer.close()


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
