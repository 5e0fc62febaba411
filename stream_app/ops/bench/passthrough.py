"""The throughput ceiling: a bare aiokafka consume -> produce passthrough.

It reads the events topic in its own consumer group, batched by ``getmany``, sends every record's
key and value unchanged to an output topic, waits for the broker's acknowledgements and then
commits, the same at-least-once shape as the worker but with no parsing, state or scoring. Run
it as a process (``python -m stream_app.ops.bench.passthrough``) so it has an interpreter of its own.

>>> import asyncio
>>> asyncio.run(passthrough("127.0.0.1:9092", "in", "out", "g", expect=0))  # doctest: +SKIP
{'forwarded': 0, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from stream_app.kafka import KafkaTarget, aio_consumer, aio_producer, as_connection


async def passthrough(kafka: KafkaTarget, source: str, sink: str, group: str, expect: int,
                      idle_s: float = 20.0, max_records: int = 2000) -> dict[str, Any]:
    """Forward records from ``source`` to ``sink`` until ``expect`` were forwarded (or ``idle_s`` of silence)."""
    conn = as_connection(kafka)
    consumer = aio_consumer(conn, source, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
    producer = aio_producer(conn, acks=1, linger_ms=1, max_batch_size=256 * 1024)
    await producer.start()
    await consumer.start()
    forwarded = 0
    first = None
    last_data = time.monotonic()
    try:
        while forwarded < expect:
            batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
            if not batches:
                if time.monotonic() - last_data > idle_s:
                    break
                continue
            last_data = time.monotonic()
            if first is None:
                first = time.perf_counter()
            futures = []
            for records in batches.values():
                for r in records:
                    futures.append(await producer.send(sink, r.value, key=r.key))
            await asyncio.gather(*futures)
            await consumer.commit()
            forwarded += len(futures)
    finally:
        await consumer.stop()
        await producer.stop()
    took = time.perf_counter() - first if first is not None else 0.0
    return {"forwarded": forwarded, "seconds": round(took, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="bare aiokafka consume->produce passthrough")
    ap.add_argument("--bootstrap", help="host:port list (default: STREAMREC_BROKER); TLS/SASL from STREAMREC_*")
    ap.add_argument("--source", required=True)
    ap.add_argument("--sink", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--idle-s", type=float, default=20.0)
    args = ap.parse_args(argv)
    from stream_app.settings import get_settings

    conn = get_settings().kafka_connection(args.bootstrap)
    print(json.dumps(asyncio.run(passthrough(conn, args.source, args.sink, args.group,
                                             args.expect, args.idle_s))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
