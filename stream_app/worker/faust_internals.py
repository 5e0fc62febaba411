"""Every touch of a Faust or aiokafka private attribute, in one module that checks them at start.

:func:`check` runs before a worker is built: on a Faust whose internals differ from what this
module knows (faust-streaming 0.15.x), the worker refuses to start with one line instead of
misbehaving later. The RocksDB store accessors (:func:`rocks_db`, :func:`open_rocks_db`) serve
the state backend; the rest are fixes to Faust's consumer: commit nothing that is not processed,
rewind partitions that have no committed offset yet, and keep its stall check from crashing on a
partition whose position is not known yet (see :func:`_install_stall_check_fix`).

**Rewind.** During a rebalance Faust discards records it has already taken from the Kafka client
and relies on "seek to the committed offset" to fetch them again. The client skips that seek when
a partition has no committed offset (a new group, or nothing committed yet), so the records
fetched before the rebalance were never seen again: the first events of a fresh stream went
missing when a second worker joined. :func:`install` makes the seek go to the partition's first
offset in that case, when no record of the partition has reached the streams since it was
assigned, for the worker's stream topics (never for changelogs).

**Commits.** Faust decides what to commit from the offsets its streams acknowledged, plus offset *gaps* it
treats as acknowledged (offsets it never saw, such as transaction markers). Three of its paths
can make that decision run ahead of the work:

* **Gaps that are not gaps.** After a rebalance Faust resumes the partitions and then seeks them
  to the committed offsets. Records fetched in between are delivered, the seek moves Faust's read
  position back, and the next record of the same batch looks like a jump: the offsets in between
  (delivered, still queued for scoring) and the record itself are recorded as a gap, and a commit
  that reaches the gap commits all of it.
* **An off-by-one.** The check that acknowledgements start at the committed offset lets them
  start one above it, so an event acknowledged out of order (an invalid record dead-lettered while
  valid ones wait for the scorer) can commit over the one before it.
* **Forgotten positions.** When partitions are revoked Faust drops its committed offsets and
  acknowledgements before it waits for the streams, so the commit that ends the revocation can
  start from whatever is acknowledged next, over records that were dropped from its buffers
  unprocessed.

A commit that runs ahead is harmless until the worker dies before the work catches up; then the
events in between are never processed (no recommendation, no state update). :func:`install`
also wraps the consumer's offset filter so that, per partition, a commit

* never passes the lowest offset delivered to the streams and not yet acknowledged, and
* never starts above the last committed offset unless every offset in between is a known gap.

Held back, the offset is committed by a later commit once the work has caught up; at worst the
next owner of the partition processes a few events again, which the state store recognises
(at-least-once, never lost).

>>> from intervaltree import IntervalTree
>>> has_hole(committed=100, lowest_acked=100, gaps=None)
False
>>> has_hole(committed=100, lowest_acked=101, gaps=None)      # 100 was never acknowledged
True
>>> has_hole(committed=100, lowest_acked=102, gaps=IntervalTree.from_tuples([(100, 102)]))
False
>>> clamp(150, pending_floor=120, committed=100)             # 120 is still being processed
120
>>> clamp(150, pending_floor=100, committed=100) is None     # nothing new can be committed
True
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Collection, Iterable
from typing import Any

from stream_app.core.metrics import WorkerMetrics

log = logging.getLogger(__name__)

_LOG_EVERY_S = 10.0
SUPPORTED = "0.15."
"""The faust-streaming versions whose internals this module was checked against."""


class FaustVersionError(RuntimeError):
    """The installed Faust lacks an internal the worker relies on."""


def _needed() -> list[tuple[Any, str, tuple[str, ...]]]:
    """``(class, method, instance attributes its __init__ sets)`` for every internal used here."""
    from faust.stores.rocksdb import Store
    from faust.transport.consumer import Consumer, ThreadDelegateConsumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    return [
        (Consumer, "_filter_committable_offsets",
         ("_committed_offset", "_acked", "_gap", "_unacked_messages", "_read_offset")),
        (ThreadDelegateConsumer, "seek_to_committed", ("_thread",)),
        (Store, "_db_for_partition", ("_dbs",)),
        (AIOKafkaConsumerThread, "verify_event_path", ()),
    ]


def _set_in_init(cls: Any) -> set[str]:
    """Attribute names the ``__init__`` methods of ``cls`` and its bases refer to."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        code = getattr(init, "__code__", None)
        if code is not None:
            names.update(code.co_names)
    return names


def check() -> None:
    """Raise :class:`FaustVersionError` (one line) unless the internals used here exist.

    >>> check()  # the pinned faust-streaming has them
    """
    import faust

    version = getattr(faust, "__version__", "unknown")
    missing: list[str] = []
    for cls, method, attributes in _needed():
        if not hasattr(cls, method):
            missing.append(f"{cls.__name__}.{method}")
        known = _set_in_init(cls)
        missing += [f"{cls.__name__}().{a}" for a in attributes if a not in known]
    if missing or not str(version).startswith(SUPPORTED):
        raise FaustVersionError(
            f"faust-streaming {version} is not supported (checked against {SUPPORTED}x"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + "): install the version pinned in pyproject.toml"
        )


def rocks_db(table: Any, partition: int) -> Any:
    """The RocksDB database of ``partition`` behind a Faust table (opened if needed)."""
    return table.data._db_for_partition(partition)


def open_rocks_db(table: Any, partition: int) -> Any | None:
    """The database of ``partition`` if it is open now (None once the partition was revoked)."""
    return table.data._dbs.get(partition)


_METRICS: weakref.WeakKeyDictionary[Any, WorkerMetrics] = weakref.WeakKeyDictionary()


def has_hole(committed: int | None, lowest_acked: int, gaps: Any) -> bool:
    """Whether some offset in ``[committed, lowest_acked)`` is neither acknowledged nor a known gap.

    ``gaps`` is Faust's ``IntervalTree`` of gap offsets for the partition (half-open intervals).
    """
    if committed is None or lowest_acked <= committed:
        return False
    cursor = committed
    if gaps:
        for iv in sorted(gaps.overlap(committed, lowest_acked), key=lambda iv: iv.begin):
            if iv.begin > cursor:
                break
            cursor = max(cursor, iv.end)
            if cursor >= lowest_acked:
                return False
    return cursor < lowest_acked


def clamp(offset: int, pending_floor: int | None, committed: int | None) -> int | None:
    """The offset to commit instead of ``offset``: no further than ``pending_floor`` (the lowest
    offset still awaiting acknowledgement); None when that is no progress over ``committed``."""
    if pending_floor is None or offset <= pending_floor:
        return offset
    if committed is not None and pending_floor <= committed:
        return None
    return pending_floor


def pending_floors(messages: Iterable[Any], tps: set[Any]) -> dict[Any, int]:
    """The lowest offset per partition among delivered messages that are not acknowledged yet."""
    floors: dict[Any, int] = {}
    for m in list(messages):
        if m.acked:
            continue
        tp = m.tp
        if tp in tps and (tp not in floors or m.offset < floors[tp]):
            floors[tp] = m.offset
    return floors


class _Counters:
    def __init__(self) -> None:
        self.held_back = 0
        self.holes = 0
        self._last_log = 0.0

    def note(self, what: str, tp: Any, detail: str, app: Any = None) -> None:
        if what == "hole":
            self.holes += 1
        else:
            self.held_back += 1
        metrics = _METRICS.get(app) if app is not None else None
        if metrics is not None:
            metrics.commits_held_back.labels(what).inc()
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            log.warning("commit held back: topic=%s partition=%s %s", tp.topic, tp.partition, detail)


counters = _Counters()
_REWIND_TOPICS: set[str] = set()


def _install_rewind(consumer_cls: Any) -> None:
    original = consumer_cls.seek_to_committed

    async def seek_to_committed(self: Any) -> Any:
        committed = await original(self)
        # The client only seeks to committed offsets above 0. A partition with nothing committed
        # and nothing handed to the streams since its assignment may have had records taken and
        # discarded: it goes back to its start. One whose records reached the streams keeps its
        # position (going back would deliver them twice; the ingest agent reads back any it
        # finds skipped, see stream_app/worker/readback.py).
        fresh = [tp for tp, offset in committed.items()
                 if not offset and tp.topic in _REWIND_TOPICS and self._read_offset.get(tp) is None]
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return committed

    consumer_cls.seek_to_committed = seek_to_committed


def _install_stall_check_fix(thread_cls: Any) -> None:
    """Faust's stall detector (``verify_event_path``, every few seconds per partition) reads the
    partition's fetch position, which aiokafka asserts is known. A partition assigned in a
    rebalance has none until its offset is looked up, and the ``AssertionError`` crashed the
    consumer and stopped the worker (seen with four workers joining a group at once). A partition
    without a position cannot have stalled yet: the check skips it until the next round."""
    original = thread_cls.verify_event_path
    if getattr(original, "_streamrec_guard", False):
        return

    def verify_event_path(self: Any, now: float, tp: Any) -> None:
        try:
            original(self, now, tp)
        except AssertionError:  # aiokafka's "position is not None": the partition is being reset
            log.debug("%s: no fetch position yet; the stall check skips it this round", tp)

    verify_event_path._streamrec_guard = True  # type: ignore[attr-defined]
    thread_cls.verify_event_path = verify_event_path


def install(stream_topics: Collection[str] = (), app: Any = None, metrics: WorkerMetrics | None = None) -> bool:
    """Install the fixes (once per process); True if they were installed now.

    ``stream_topics``: the topics whose partitions are rewound to their first offset when they
    have no committed offset (the events topic; later calls add to the set). Commits held back
    for ``app``'s consumer are counted in ``metrics``.
    """
    from faust.transport.consumer import Consumer, ThreadDelegateConsumer

    _REWIND_TOPICS.update(stream_topics)
    if app is not None and metrics is not None:
        _METRICS[app] = metrics
    original = Consumer._filter_committable_offsets
    if getattr(original, "_streamrec_guard", False):
        return False
    _install_rewind(ThreadDelegateConsumer)
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    _install_stall_check_fix(AIOKafkaConsumerThread)

    def known_committed(self: Any, tp: Any, remembered: dict[Any, int]) -> int | None:
        committed: int | None = self._committed_offset.get(tp)
        if committed is None:
            return remembered.get(tp)  # Faust forgets it on revocation: use what we saw
        remembered[tp] = committed
        return committed

    def guarded(self: Any, tps: Iterable[Any]) -> dict[Any, int]:
        remembered: dict[Any, int] = self.__dict__.setdefault("_streamrec_committed", {})
        allowed: list[Any] = []
        for tp in set(tps):
            committed = known_committed(self, tp, remembered)
            acked = self._acked.get(tp)
            if acked and has_hole(committed, min(acked), self._gap.get(tp)):
                counters.note("hole", tp, f"committed={committed} lowest acknowledged={min(acked)}", self.app)
                continue
            allowed.append(tp)
        proposed: dict[Any, int] = original(self, allowed)
        if not proposed:
            return proposed
        floors = pending_floors(self._unacked_messages, set(proposed))
        out: dict[Any, int] = {}
        for tp, offset in proposed.items():
            safe = clamp(offset, floors.get(tp), known_committed(self, tp, remembered))
            if safe != offset:
                counters.note("pending", tp, f"proposed={offset} lowest pending={floors.get(tp)}", self.app)
            if safe is not None:
                out[tp] = safe
                remembered[tp] = safe
        return out

    guarded._streamrec_guard = True  # type: ignore[attr-defined]  # a marker on a plain function
    # the monkey patch itself: mypy forbids assigning to a method of a class
    Consumer._filter_committable_offsets = guarded  # type: ignore[method-assign]
    return True
