"""Offsets the consumer skipped: found per partition, read back from Kafka directly.

Each user's state is applied in offset order and remembers the last offset applied, so a
replayed event is recognised and not counted twice. That needs every partition delivered in
order with nothing left out. Faust's consumer, right after a rebalance, can skip a record: it
resumes the partitions, then seeks them back to the committed offsets, and a record fetched
between the two can be dropped while the next one is delivered. An event skipped that way would
be processed only after later events of the same user (and then taken for a replay), or never.

The ingest agent tracks the next offset it expects per partition (:class:`OffsetTracker`).
Each time the consumer group's generation changes, a partition starts at its committed offset,
or at its first offset when nothing is committed (:func:`start_offsets`, asked once per
generation). When an event arrives beyond the expected offset, the records in between are read
straight from the broker (:func:`fetch_range`) and processed first, in order; a record that no
longer exists (a transaction marker, a compacted offset) is simply not there. A record below the
expected offset was already passed on in this generation (the consumer delivered it twice, or it
was read back): it is acknowledged, not processed again.

>>> t = OffsetTracker()
>>> t.observe(0, 10, generation=1, start=10), t.observe(0, 11, generation=1)
(None, None)
>>> t.observe(0, 14, generation=1)                                    # 12 and 13 were skipped
(12, 14)
>>> t.observe(0, 12, generation=1)                                    # an earlier offset: a replay
>>> t.seen(0, 12, generation=1), t.seen(0, 15, generation=1)
(True, False)
>>> t.needs_start(0, generation=2)                                    # a new assignment
True
>>> t.observe(0, 45, generation=2, start=40)                          # 40..44 never arrived
(40, 45)
>>> t.observe(1, 7, generation=2)                                     # no start known: the first sets it
"""

from __future__ import annotations

import time
from typing import Any


class OffsetTracker:
    """The next offset expected per partition, within one consumer group generation."""

    def __init__(self) -> None:
        self.generation: int | None = None
        self.expected: dict[int, int] = {}

    def needs_start(self, partition: int, generation: int) -> bool:
        """Whether the partition's next offset is unknown (a new generation, or a first event)."""
        return generation != self.generation or partition not in self.expected

    def seen(self, partition: int, offset: int, generation: int) -> bool:
        """Whether ``offset`` was already passed on in this generation (it is below the next one
        expected); the start offset counts as passed on, since everything below it is committed."""
        expected = self.expected.get(partition) if generation == self.generation else None
        return expected is not None and offset < expected

    def observe(self, partition: int, offset: int, generation: int,
                start: int | None = None) -> tuple[int, int] | None:
        """Record a delivered offset; return ``(first, end)`` of skipped offsets before it, or None.

        ``start`` is where the partition begins in this generation (used when it is not tracked
        yet); without it the first offset seen is taken as the start.
        """
        if generation != self.generation:
            self.generation = generation
            self.expected.clear()
        expected = self.expected.get(partition)
        if expected is None:
            expected = offset if start is None else start
        if offset == expected:
            self.expected[partition] = offset + 1
            return None
        if offset < expected:
            return None
        self.expected[partition] = offset + 1
        return expected, offset


def start_offsets(bootstrap: str, group: str, topic: str, partitions: int,
                  kafka_kwargs: dict | None = None) -> dict[int, int]:
    """Where each partition of ``topic`` starts for ``group``: its committed offset, or its first
    offset when nothing is committed (blocking: call it in a thread). Reads, never joins, the group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             **(kafka_kwargs or {}))
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


def fetch_range(bootstrap: str, topic: str, partition: int, first: int, end: int,
                kafka_kwargs: dict | None = None, timeout_s: float = 30.0) -> list[Any]:
    """The records of ``topic``/``partition`` with ``first <= offset < end``, in offset order.

    A plain consumer outside any group (blocking: call it in a thread). Offsets that do not hold
    a record (transaction markers, compaction) are absent from the result.
    """
    from kafka import KafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", **(kafka_kwargs or {}))
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
