"""Benchmark load: pre-generated, pre-encoded synthetic events, sent by a separate process.

The events are generated once (:func:`make_events`), encoded to ``(key, value)`` pairs and
written to a segment file; a producer process (``python -m stream_app.ops.bench.load``) sends a
segment either as fast as it can (a backlog) or at a fixed rate, and writes the wall-clock send
time of every event next to it. Being its own process, the producer never competes with the
measurement for the GIL.

>>> pairs = encode_events(make_events(5, n_items=50, n_users=10, seed=1))
>>> len(pairs), pairs[0][0].startswith(b"u-"), event_index(b"syn-1-4")
(5, True, 4)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson

from stream_app.data.synthetic import generate
from stream_app.kafka import KafkaConnection, KafkaTarget, aio_producer, as_connection


def make_events(n: int, n_items: int, n_users: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` synthetic contract events over a catalogue of ``n_items`` (ids ``syn-{seed}-{i}``)."""
    return list(generate(n, n_users=n_users, n_items=n_items, seed=seed, events_per_second=1000.0))


def encode_events(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """Key (user id) and JSON value of each event, exactly as they go on the wire."""
    return [(ev["user_id"].encode(), orjson.dumps(ev)) for ev in events]


def event_index(event_id: bytes | str) -> int:
    """The running number ``i`` of a synthetic event id ``syn-{seed}-{i}``."""
    if isinstance(event_id, str):
        event_id = event_id.encode()
    return int(event_id.rsplit(b"-", 1)[1])


def write_segment(path: Path, pairs: list[tuple[bytes, bytes]]) -> Path:
    path.write_bytes(msgspec.msgpack.encode(pairs))
    return path


def read_segment(path: Path) -> list[tuple[bytes, bytes]]:
    return [tuple(p) for p in msgspec.msgpack.decode(path.read_bytes())]


def produce(kafka: KafkaTarget, topic: str, pairs: list[tuple[bytes, bytes]], rate: float = 0.0,
            **kafka_kwargs: Any) -> tuple[np.ndarray, float]:
    """Send ``pairs`` to ``topic`` (``rate`` events/s, 0 = as fast as possible).

    Returns the wall-clock send time of every record (``time.time()`` just before ``send``)
    and the seconds the sending took (flush included). The producer is aiokafka's, whose record
    batches are built in C: the load costs the machine's cores little next to the workers.
    """
    return asyncio.run(_produce(as_connection(kafka), topic, pairs, rate, **kafka_kwargs))


async def _produce(conn: KafkaConnection, topic: str, pairs: list[tuple[bytes, bytes]], rate: float,
                   **kafka_kwargs: Any) -> tuple[np.ndarray, float]:
    kafka_kwargs.setdefault("acks", 1)
    kafka_kwargs.setdefault("linger_ms", 1 if rate else 20)
    kafka_kwargs.setdefault("max_batch_size", 64 * 1024 if rate else 512 * 1024)
    producer = aio_producer(conn, **kafka_kwargs)
    await producer.start()
    n = len(pairs)
    times = np.zeros(n, dtype=np.float64)
    send = producer.send
    now = time.time
    pending: list[Any] = []
    try:
        t0 = time.perf_counter()
        i = 0
        while i < n:
            if rate:
                target = min(n, int((time.perf_counter() - t0) * rate) + 1)
                if target <= i:
                    await asyncio.sleep(max(0.0, (i / rate) - (time.perf_counter() - t0)))
                    continue
            else:
                target = min(n, i + 5000)
            while i < target:
                key, value = pairs[i]
                times[i] = now()
                pending.append(await send(topic, value=value, key=key))
                i += 1
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending.clear()
            if not rate:
                await asyncio.sleep(0)
        await producer.flush()
        await asyncio.gather(*pending)
        return times, time.perf_counter() - t0
    finally:
        await producer.stop()


def spawn(kafka: KafkaTarget, topic: str, segment: Path, rate: float, times_out: Path) -> subprocess.Popen[bytes]:
    """Start a producer process for ``segment``; it prints one JSON summary line on stdout.

    The process reaches Kafka as ``kafka`` does (its ``STREAMREC_*`` Kafka variables are set to it).
    """
    from stream_app.settings import env_with_connection

    conn = as_connection(kafka)
    cmd = [sys.executable, "-m", "stream_app.ops.bench.load", "--topic", topic,
           "--segment", str(segment), "--rate", str(rate), "--times-out", str(times_out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_with_connection(conn))


def finish(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Wait for a producer process and return its summary (raises with its stderr on failure)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError(f"load producer did not finish within {timeout:.0f}s: {err.decode()[-2000:]}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"load producer failed ({proc.returncode}): {err.decode()[-2000:]}")
    summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="send a pre-encoded benchmark segment to Kafka")
    ap.add_argument("--bootstrap", help="host:port list (default: STREAMREC_BROKER); TLS/SASL from STREAMREC_*")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--segment", required=True, type=Path)
    ap.add_argument("--rate", type=float, default=0.0, help="events/s (0 = as fast as possible)")
    ap.add_argument("--times-out", required=True, type=Path, help="where to write send times (.npy)")
    args = ap.parse_args(argv)
    if args.rate < 0:
        ap.error("--rate must be >= 0")
    pairs = read_segment(args.segment)
    from stream_app.settings import get_settings

    times, took = produce(get_settings().kafka_connection(args.bootstrap), args.topic, pairs, args.rate)
    np.save(args.times_out, times)
    span = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    print(json.dumps({"sent": len(pairs), "seconds": round(took, 3),
                      "send_rate": round((len(pairs) - 1) / span, 1) if span > 0 else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
