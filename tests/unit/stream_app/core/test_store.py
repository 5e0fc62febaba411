"""Batched user-state writes: one record per user per batch, persisted offsets once acknowledged."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from schemas import Event
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import decode_state
from stream_app.core.store import DictTable, UserStateStore


class Backend(DictTable):
    def __init__(self) -> None:
        super().__init__({})
        self.persisted: dict[int, int] = {}
        self.writes = 0

    def write(self, partition, items):
        self.writes += 1
        super().write(partition, items)

    def set_persisted_offset(self, partition, offset):
        self.persisted[partition] = offset


async def test_write_sends_one_changelog_record_per_user_and_records_the_acked_offset():
    backend = Backend()
    sent: list[tuple] = []
    futures: list[asyncio.Future] = []

    async def send(topic, key, value, partition):
        sent.append((topic, key, value, partition))
        fut = asyncio.get_running_loop().create_future()
        futures.append(fut)
        return fut

    store = UserStateStore(backend, "cl", send)
    await store.write({(0, "a"): b"1", (0, "b"): b"2", (3, "c"): b"3"})
    assert backend.writes == 2  # one RocksDB write batch per partition
    assert sorted(sent) == [("cl", b"a", b"1", 0), ("cl", b"b", b"2", 0), ("cl", b"c", b"3", 3)]
    assert backend.persisted == {}  # nothing acknowledged yet
    for i, fut in enumerate(futures):
        fut.set_result(SimpleNamespace(offset=10 + i))
    await asyncio.sleep(0)
    assert backend.persisted == {0: 11, 3: 12}  # the last record of each partition
    assert store.read(0, "b") == b"2" and store.read(3, "a") is None


async def test_a_failed_send_records_no_offset():
    backend = Backend()
    loop = asyncio.get_running_loop()

    async def send(topic, key, value, partition):
        fut = loop.create_future()
        fut.set_exception(RuntimeError("broker gone"))
        return fut

    await UserStateStore(backend, "cl", send).write({(1, "a"): b"x"})
    await asyncio.sleep(0)
    assert backend.persisted == {}
    assert backend.get(1, b"a") == b"x"


def test_prepare_coalesces_a_users_events_and_repairs_replays():
    p = Pipeline()
    stored: dict[tuple[int, str], bytes] = {}
    read = lambda part, user: stored.get((part, user))  # noqa: E731
    evs = [Event(f"e{i}", "u" if i % 2 else "v", f"i{i}", "click", float(i)) for i in range(6)]
    batch = [Pending(ev, 0, off) for off, ev in enumerate(evs)]
    states, dups = p.prepare(batch, read)
    assert dups == 0 and set(states) == {(0, "u"), (0, "v")}
    assert decode_state(states[(0, "u")]).counts == [0, 3, 0, 0]
    assert batch[3].before.recent_items == ("i1",) and batch[3].after.recent_items == ("i1", "i3")
    stored.update(states)
    again, dups = p.prepare([Pending(evs[5], 0, 5)], read)  # a replay after a crash
    assert dups == 1 and again == {(0, "u"): stored[(0, "u")]}
