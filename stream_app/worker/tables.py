"""Tables of a worker: per-user state on RocksDB (rocksdict) with its changelog topic."""

from __future__ import annotations

from typing import Any

import faust

from stream_app.settings import Settings
from stream_app.worker.app import topic_replication


def declare_user_state(app: faust.App, s: Settings) -> Any:
    """The ``user_state`` table (key user_id; value the encoded :class:`stream_app.core.state.UserState`)."""
    return app.Table(
        "user_state",
        key_type=bytes,  # bytes key and value types make Faust use the raw codec
        value_type=bytes,
        partitions=s.events_partitions,
        options={
            "driver": "rocksdict",
            "block_cache_size": s.rocksdb_block_cache_mb * 1024 * 1024,
            "block_cache_compressed_size": 0,
        },
        help="Per-user state (schemas in stream_app/core/state.py), key = user_id.",
        # a changelog write is acknowledged once this many replicas hold it (the worker waits for that)
        extra_topic_configs={"min.insync.replicas": str(topic_replication(s)[1])},
    )


def changelog_name(s: Settings) -> str:
    """The changelog topic Faust gives the ``user_state`` table of app ``s.app_id``.

    >>> changelog_name(Settings(app_id="shop"))
    'shop-user_state-changelog'
    """
    return f"{s.app_id}-user_state-changelog"
