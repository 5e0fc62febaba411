"""Offset bookkeeping of the ingest agent: which offsets the consumer skipped, per partition.

Each user's state is applied in offset order and remembers the last offset applied, so a
replayed event is recognised and not counted twice. That needs every partition delivered in
order with nothing left out. Faust's consumer, right after a rebalance, can skip a record: it
resumes the partitions, then seeks them back to the committed offsets, and a record fetched
between the two can be dropped while the next one is delivered. An event skipped that way would
be processed only after later events of the same user (and then taken for a replay), or never.

The ingest agent tracks the next offset it expects per partition (:class:`OffsetTracker`).
Each time the consumer group's generation changes, a partition starts at its committed offset,
or at its first offset when nothing is committed (:func:`stream_app.worker.readback.start_offsets`,
asked once per generation). When an event arrives beyond the expected offset, the records in between are read
straight from the broker
(:func:`stream_app.worker.readback.fetch_range`) and processed first, in order; a record that no
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
