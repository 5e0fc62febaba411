"""Tailing a topic for people (``streamrec consume``)."""

from __future__ import annotations

import sys
from typing import Any

import orjson

from stream_app.kafka import KafkaTarget, as_connection, kafka_consumer

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    r"""``text`` with control characters (terminal escapes, line breaks) shown as ``\xNN``.

    Ids come from producers: one with an ANSI escape must not repaint the operator's terminal.

    >>> print(printable("u-1" + chr(27) + "[2J" + chr(10)))
    u-1\x1b[2J\x0a
    """
    return text.translate(_CONTROL)


def describe(value: bytes) -> str:
    """One readable line for a recommendation message (control characters escaped)."""
    return printable(_describe(value))


def _describe(value: bytes) -> str:
    try:
        msg = orjson.loads(value)
        items = ", ".join(f"{i['item_id']} ({i['score']:.3g} {i['source']})" for i in msg["items"][:5])
        more = len(msg["items"]) - 5
        ver = msg.get("model_version", {})
        return (f"{msg['user_id']} after {msg['event_id']}: {items}{f' +{more} more' if more > 0 else ''}"
                f"  [deep {ver.get('deep') or '-'}, online {ver.get('online')}, {msg.get('latency_ms')} ms]")
    except Exception:
        return value.decode("utf-8", "replace")


def tail(kafka: KafkaTarget, topic: str, json_out: bool = False, max_messages: int = 0,
         idle_s: float = 0.0, from_beginning: bool = False, kafka_kwargs: dict[str, Any] | None = None) -> int:
    """Print the messages of ``topic`` as they arrive; return how many were printed.

    ``kafka`` is the connection (a bare bootstrap string means plaintext); ``kafka_kwargs`` are
    extra consumer options.
    """
    kw = dict(kafka_kwargs or {})
    if idle_s:
        kw["consumer_timeout_ms"] = int(idle_s * 1000)
    consumer = kafka_consumer(
        as_connection(kafka), topic, group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest", enable_auto_commit=False, **kw,
    )
    n = 0
    try:
        for record in consumer:
            line = (record.value or b"").decode("utf-8", "replace") if json_out else describe(record.value)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            n += 1
            if max_messages and n >= max_messages:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return n
