"""Sending a stream of events to Kafka at a steady rate, with a progress bar."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

from stream_app.client import EventProducer
from stream_app.data.sources import Rejected
from stream_app.kafka import KafkaTarget, as_connection


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
    extra producer options.
    """
    sent = rejected = 0
    start = time.perf_counter()
    with EventProducer(topic=topic, connection=as_connection(kafka), **(kafka_kwargs or {})) as producer, tqdm(
        total=total, disable=not progress, unit="ev", desc="produce", mininterval=0.5
    ) as bar:
        for row in source:
            if isinstance(row, Rejected):
                producer.send_raw(None, row.raw)
                rejected += 1
            else:
                producer.send(row)
            sent += 1
            if sent % 256 == 0:
                bar.update(256)
                if rate > 0:
                    ahead = sent / rate - (time.perf_counter() - start)
                    if ahead > 0:
                        time.sleep(ahead)
        producer.flush()
        bar.update(sent % 256)
    return sent, rejected, time.perf_counter() - start
