"""The commit guard on a real Faust consumer object (its offset bookkeeping, no broker)."""

from __future__ import annotations

import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message
from intervaltree import IntervalTree

from stream_app.worker import faust_internals

TPA = TP("events", 0)


@pytest.fixture
def consumer():
    faust_internals.install()
    app = faust.App("commit-guard-test", broker="kafka://127.0.0.1:1", store="memory://")
    return app.consumer


def delivered(consumer, *offsets: int) -> list[Message]:
    """Messages handed to the streams and not acknowledged yet (the caller keeps them alive)."""
    msgs = [Message(TPA.topic, TPA.partition, o, 0.0, 0, [], b"u", b"{}", None) for o in offsets]
    for m in msgs:
        consumer.track_message(m)
    return msgs


def acked(consumer, *offsets: int) -> None:
    consumer._acked[TPA].extend(offsets)
    consumer._acked_index[TPA].update(offsets)


def test_install_is_idempotent():
    faust_internals.install()
    assert faust_internals.install() is False


def test_plain_progress_is_committed(consumer):
    consumer._committed_offset[TPA] = 100
    acked(consumer, *range(100, 110))
    assert consumer._filter_committable_offsets({TPA}) == {TPA: 110}


def test_a_seek_gap_over_pending_events_is_not_committed(consumer):
    # resume-then-seek: 101..106 were delivered before the seek and still wait for the scorer;
    # Faust recorded them (and 106 itself) as a gap
    consumer._committed_offset[TPA] = 100
    keep = delivered(consumer, *range(101, 110))
    consumer._gap[TPA] = IntervalTree.from_tuples([(101, 107)])
    acked(consumer, 100, 102)  # 102 acknowledged (out of order) makes Faust take the whole gap
    out = consumer._filter_committable_offsets({TPA})
    assert out == {TPA: 101}, "no further than the lowest offset still pending"
    assert keep  # the pending messages were alive throughout


def test_off_by_one_does_not_commit_over_an_unacknowledged_event(consumer):
    # 100 waits for the scorer; 101 (an invalid record) was acknowledged at once
    consumer._committed_offset[TPA] = 100
    keep = delivered(consumer, 100)
    acked(consumer, 101)
    assert consumer._filter_committable_offsets({TPA}) == {}
    assert keep


def test_revoked_positions_are_remembered(consumer):
    consumer._committed_offset[TPA] = 500
    acked(consumer, *range(500, 505))
    assert consumer._filter_committable_offsets({TPA}) == {TPA: 505}
    # revocation: Faust forgets committed offsets and acknowledgements, then a record that was
    # queued before the revocation (511) is acknowledged while 505..510 were dropped unprocessed
    consumer._committed_offset.pop(TPA)
    consumer._acked.pop(TPA)
    consumer._acked_index.pop(TPA)
    acked(consumer, 511)
    assert consumer._filter_committable_offsets({TPA}) == {}
    assert faust_internals.counters.holes >= 1


def test_known_gaps_such_as_transaction_markers_are_committed_over(consumer):
    consumer._committed_offset[TPA] = 200
    consumer._gap[TPA] = IntervalTree.from_tuples([(200, 201)])  # a marker at 200
    acked(consumer, 201, 202)
    assert consumer._filter_committable_offsets({TPA}) == {TPA: 203}


def test_the_start_check_refuses_a_faust_without_the_internals(monkeypatch):
    class Consumer:  # what a Faust whose consumer lost a method and renamed an attribute might look like
        def __init__(self) -> None:
            self._acknowledged: set[int] = set()

    faust_internals.check()  # the pinned version passes
    monkeypatch.setattr(faust_internals, "_needed", lambda: [(Consumer, "_filter_committable_offsets", ("_acked",))])
    with pytest.raises(faust_internals.FaustVersionError,
                       match=r"missing Consumer\._filter_committable_offsets, Consumer\(\)\._acked"):
        faust_internals.check()


def test_the_start_check_refuses_another_faust_version(monkeypatch):
    monkeypatch.setattr(faust, "__version__", "0.16.0")
    with pytest.raises(faust_internals.FaustVersionError, match=r"faust-streaming 0\.16\.0 is not supported"):
        faust_internals.check()


def test_the_stall_check_skips_a_partition_without_a_position_instead_of_crashing():
    from types import SimpleNamespace

    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    from stream_app.worker import faust_internals

    faust_internals.install()

    def no_position(now, tp):
        raise AssertionError  # what aiokafka's TopicPartitionState.position raises during a reset

    thread = SimpleNamespace(_verify_aiokafka_event_path=no_position)
    assert AIOKafkaConsumerThread.verify_event_path(thread, 0.0, ("events", 0)) is None
