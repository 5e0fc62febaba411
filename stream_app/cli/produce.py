"""Sending a stream of events to Kafka at a steady rate, with a progress bar."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from kafka.errors import KafkaError
from tqdm import tqdm

from schemas.items import InvalidItem, decode_item
from stream_app.cli.errors import UserError
from stream_app.client import EventProducer
from stream_app.data.sources import Rejected
from stream_app.kafka import KafkaTarget, as_connection


class SendFailed(UserError):
    """Some records were not written (the producer's flush only logs failed batches)."""

    def __init__(self, failed: int, sent: int, first: BaseException) -> None:
        super().__init__(f"{failed} of {sent} events were not written to Kafka (first error: {first!r}); "
                         "nothing else was lost: send them again")
        self.failed, self.sent, self.first = failed, sent, first


def produce_events(
    source: Iterable[dict[str, Any] | Rejected],
    kafka: KafkaTarget,
    rate: float = 0.0,
    total: int | None = None,
    progress: bool = True,
    kafka_kwargs: dict[str, Any] | None = None,
    topic: str = "events",
) -> tuple[int, int, float]:
    """Send every event of ``source``; rows that are not valid events are sent as raw bytes so the
    worker dead-letters them (nothing is dropped quietly). Returns ``(sent, rejected, seconds)``.

    ``kafka`` is the connection (a bare bootstrap string means plaintext); ``kafka_kwargs`` are
    extra producer options. Raises :class:`SendFailed` if any record was not written.
    """
    sent = rejected = 0
    tally = _Tally()
    start = time.perf_counter()
    producer = EventProducer(topic=topic, connection=as_connection(kafka), **(kafka_kwargs or {}))
    try:
        with tqdm(total=total, disable=not progress, unit="ev", desc="produce", mininterval=0.5) as bar:
            for row in source:
                if isinstance(row, Rejected):
                    future = producer.send_raw(None, row.raw)
                    rejected += 1
                else:
                    future = producer.send(row)
                future.add_callback(tally.ok)
                future.add_errback(tally.error)
                sent += 1
                if sent % 256 == 0:
                    bar.update(256)
                    if rate > 0:
                        ahead = sent / rate - (time.perf_counter() - start)
                        if ahead > 0:
                            time.sleep(ahead)
            tally.wait(producer, sent)
            bar.update(sent % 256)
    finally:
        try:
            producer.close()
        except KafkaError:  # what it could not send is counted by the tally
            pass
    failed = len(tally.errors) + (sent - tally.done)
    if failed:
        first = tally.errors[0] if tally.errors else TimeoutError("no answer from the broker")
        raise SendFailed(failed, sent, first)
    return sent, rejected, time.perf_counter() - start


class _Tally:
    """Counts the answers to the records sent (kafka-python's flush only logs failed batches)."""

    def __init__(self) -> None:
        self.done = 0
        self.errors: list[BaseException] = []

    def ok(self, _metadata: object) -> None:
        self.done += 1

    def error(self, exc: BaseException) -> None:
        self.done += 1
        self.errors.append(exc)

    def wait(self, producer: EventProducer, sent: int, timeout_s: float = 60.0) -> None:
        """Flush, then wait until every record is answered (written or failed) or ``timeout_s``."""
        try:
            producer.flush()
        except KafkaError:  # the flush can give up on a batch it split after a refusal: count instead
            pass
        deadline = time.monotonic() + timeout_s
        while self.done < sent and time.monotonic() < deadline:
            time.sleep(0.05)


def read_items(path: Path) -> Iterator[tuple[bytes | None, bytes | None, bool]]:
    """``(key, value, valid)`` of each line of an items JSONL file, in order.

    A line ``{"item_id": "i-1", "deleted": true}`` is a tombstone (value None). A line that is not
    a valid item record is kept as it is (valid False, key the item_id when one can be read), so
    the workers dead-letter it with the reason, as they do invalid events.
    """
    with open(path, "rb") as f:
        for raw in f:
            line = raw.strip()
            if not line:
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield None, line, False
                continue
            item_id = data.get("item_id") if isinstance(data, dict) else None
            key = item_id.encode() if isinstance(item_id, str) and item_id else None
            if isinstance(data, dict) and data.get("deleted") is True and key is not None and len(data) == 2:
                yield key, None, True
                continue
            try:
                decode_item(line, key)
            except InvalidItem:
                yield key, line, False
            else:
                yield key, line, True


def produce_items(path: Path, kafka: KafkaTarget, topic: str, progress: bool = True) -> tuple[int, int, float]:
    """Send every record of an items JSONL file to the catalogue topic; ``(sent, invalid, seconds)``."""
    sent = invalid = 0
    tally = _Tally()
    start = time.perf_counter()
    producer = EventProducer(topic=topic, connection=as_connection(kafka))
    try:
        with tqdm(disable=not progress, unit="item", desc="produce items", mininterval=0.5) as bar:
            for key, value, valid in read_items(path):
                future = producer.send_raw(key, value, topic=topic)
                invalid += not valid
                future.add_callback(tally.ok)
                future.add_errback(tally.error)
                sent += 1
                bar.update(1)
            tally.wait(producer, sent)
    finally:
        try:
            producer.close()
        except KafkaError:
            pass
    failed = len(tally.errors) + (sent - tally.done)
    if failed:
        first = tally.errors[0] if tally.errors else TimeoutError("no answer from the broker")
        raise SendFailed(failed, sent, first)
    return sent, invalid, time.perf_counter() - start
