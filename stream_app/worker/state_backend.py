"""The RocksDB state backend of a worker: the databases Faust keeps behind the ``user_state`` table.

Faust owns the table (it creates the changelog topic, restores partitions from it, keeps standby
replicas); :class:`stream_app.core.store.UserStateStore` reads and writes through this backend a
micro-batch at a time. Every touch of the store's private attributes is in
:mod:`stream_app.worker.faust_internals`.
"""

from __future__ import annotations

from typing import Any

import rocksdict

from stream_app.worker import faust_internals


class FaustRocksTable:
    """The RocksDB databases (one per partition) behind a Faust table with the rocksdict driver."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def _db(self, partition: int) -> Any:
        return faust_internals.rocks_db(self.table, partition)

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self._db(partition).get(key)  # raw mode: stored bytes or None
        return value

    def write(self, partition: int, items: list[tuple[bytes, bytes]]) -> None:
        wb = rocksdict.WriteBatch(raw_mode=True)
        for k, v in items:
            wb.put(k, v)
        self._db(partition).write(wb)

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        db = faust_internals.open_rocks_db(self.table, partition)
        if db is not None:  # not when the partition was revoked (and its database closed) meanwhile
            db.put(self.table.data.offset_key, str(offset).encode())
