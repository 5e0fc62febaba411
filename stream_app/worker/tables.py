"""Tables: per-user state on RocksDB (rocksdict) with its changelog topic."""

from __future__ import annotations

from stream_app.settings import get_settings
from stream_app.worker.app import app

_s = get_settings()

user_state = app.Table(
    "user_state",
    key_type=bytes,  # bytes key and value types make Faust use the raw codec
    value_type=bytes,
    partitions=_s.events_partitions,
    options={
        "driver": "rocksdict",
        "block_cache_size": _s.rocksdb_block_cache_mb * 1024 * 1024,
        "block_cache_compressed_size": 0,
    },
    help="Per-user state (schemas in stream_app/state.py), key = user_id.",
)
