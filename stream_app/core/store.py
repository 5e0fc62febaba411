"""Batched reads and writes of users' states, for the scorer (the backend is pluggable).

Faust's per-key table API costs about 200 us per write here: each write sends one changelog
record through Faust's producer buffer with a callback that writes the table's persisted offset
to RocksDB. That is more than the rest of the pipeline spends on an event, so the scorer goes
one level down, once per micro-batch:

* reads go straight to the RocksDB of the event's partition;
* a user's updates within a batch are coalesced: one RocksDB write batch per partition, and one
  changelog record per user, sent to the partition Faust would have used (the event's);
* the persisted offset of each changelog partition is written once per batch, when its last
  record is acknowledged by the broker.

Faust still owns the table: it creates the changelog topic, restores the store from it when a
partition is assigned, keeps standby replicas, and flushes the producer (changelog included)
before committing the events' offsets, so a committed event always has its state in the
changelog.

>>> import asyncio, tempfile
>>> from pathlib import Path
>>> store = UserStateStore(DictTable({}), changelog="t-changelog", send=None)
>>> asyncio.run(store.write({(0, "u-1"): b"state"}))  # no changelog sender here: nothing to confirm
[]
>>> store.read(0, "u-1"), store.read(1, "u-1")
(b'state', None)
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Send = Callable[..., Awaitable[Any]]
"""``send(topic, key, value, partition=p)``: queue a record, return the delivery future."""


class StateBackend(Protocol):
    """Where users' states are stored: one key-value database per partition."""

    def get(self, partition: int, key: bytes) -> bytes | None: ...

    def write(self, partition: int, items: list[tuple[bytes, bytes]]) -> None: ...

    def set_persisted_offset(self, partition: int, offset: int) -> None: ...


class DictTable:
    """A stand-in store with the same two operations, for code that runs without Faust."""

    def __init__(self, data: dict[tuple[int, bytes], bytes]) -> None:
        self.data = data

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get((partition, key))

    def write(self, partition: int, items: list[tuple[bytes, bytes]]) -> None:
        for k, v in items:
            self.data[(partition, k)] = v

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        pass


class UserStateStore:
    """Read a user's stored state; write a batch of states to the store and the changelog."""

    def __init__(self, backend: StateBackend, changelog: str, send: Send | None) -> None:
        self.backend = backend
        self.changelog = changelog
        self.send = send
        self.persisted: dict[int, int] = {}

    def read(self, partition: int, user_id: str) -> bytes | None:
        return self.backend.get(partition, user_id.encode())

    async def write(self, states: dict[tuple[int, str], bytes]) -> list[Any]:
        """Store ``{(partition, user_id): encoded state}`` and queue one changelog record each.

        Returns what each changelog send returned (the outputs to confirm before acknowledging).
        """
        sent: list[Any] = []
        if not states:
            return sent
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for (partition, user), value in states.items():
            by_partition[partition].append((user.encode(), value))
        for partition, items in by_partition.items():
            self.backend.write(partition, items)
        if self.send is None:
            return sent
        for partition, items in by_partition.items():
            out = None
            for key, value in items:
                out = await self.send(self.changelog, key, value, partition=partition)
                sent.append(out)
            fut = getattr(out, "delivery", out)
            if isinstance(fut, asyncio.Future):
                fut.add_done_callback(self._persisted_callback(partition))
        return sent

    def _persisted_callback(self, partition: int) -> Callable[[asyncio.Future[Any]], None]:
        def done(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                return  # the confirmer sends it again (or stops the worker); nothing to record here
            offset = fut.result().offset
            if offset > self.persisted.get(partition, -1):
                self.persisted[partition] = offset
                try:
                    self.backend.set_persisted_offset(partition, offset)
                except Exception:  # the partition moved away meanwhile: its new owner restores it
                    log.debug("persisted offset not written: changelog partition=%d", partition, exc_info=True)

        return done
