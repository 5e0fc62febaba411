"""Client side of streamrec on kafka-python: send events, read recommendations.

Events are validated against the contract *before* they leave the process, so a bad event
raises :class:`schemas.InvalidEvent` at its source and nothing is sent. ``send_raw`` is the
deliberate way around that (tests, fuzzing, replaying rejected rows for the dead-letter path).

>>> with EventProducer("127.0.0.1:9092") as producer:           # doctest: +SKIP
...     producer.send({"event_id": "e-1", "user_id": "u-1", "item_id": "i-1",
...                    "type": "click", "ts": 1732550000.25})
...     producer.flush()
>>> with RecommendationConsumer("127.0.0.1:9092", idle_timeout_s=5) as recs:  # doctest: +SKIP
...     for rec in recs:
...         print(rec.user_id, [item.item_id for item in rec.items])

On a secured cluster pass the connection (TLS / SASL options included) instead of an address:

>>> from stream_app.settings import get_settings
>>> producer = EventProducer(connection=get_settings().kafka_connection())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any, Literal

import msgspec
from kafka import TopicPartition
from kafka.producer.future import FutureRecordMetadata

from schemas import InvalidEvent, Recommendation, decode_recommendation, encode, event_from_dict
from schemas.items import MAX_ITEM_BYTES, InvalidItem, item_from_dict
from stream_app.kafka import KafkaConnection, kafka_consumer, kafka_producer

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def _connection(bootstrap: str | None, connection: KafkaConnection | None) -> KafkaConnection:
    """The connection to use: ``connection`` (at ``bootstrap`` if that is given too), else plaintext.

    Faust-style ``kafka://host:port`` is accepted too.

    >>> _connection(None, None).bootstrap
    '127.0.0.1:9092'
    >>> _connection("kafka://h:9093", KafkaConnection("a:1", security_protocol="SSL")).bootstrap
    'h:9093'
    """
    if connection is None:
        return KafkaConnection(bootstrap or DEFAULT_BOOTSTRAP)
    if bootstrap is None:
        return connection
    return dataclasses.replace(connection, bootstrap=bootstrap)


class EventProducer:
    """Send contract events to the ``events`` topic (key = user_id, value = compact JSON).

    ``connection`` carries the brokers and their TLS / SASL options (see :mod:`stream_app.kafka`);
    ``bootstrap`` alone means plaintext to that address, and with ``connection`` it replaces the
    connection's address. Extra keyword arguments go to ``kafka.KafkaProducer`` (e.g. ``linger_ms``, ``acks``).

    >>> p = EventProducer("127.0.0.1:9092", topic="events", linger_ms=5)  # doctest: +SKIP
    >>> p.send({"event_id": "e-1"})                                        # doctest: +SKIP
    Traceback (most recent call last):
    schemas.records.InvalidEvent: Object missing required field `user_id`
    """

    def __init__(self, bootstrap: str | None = None, topic: str = "events", *,
                 connection: KafkaConnection | None = None, **kafka_kwargs: Any):
        self.topic = topic
        kafka_kwargs.setdefault("acks", "all")
        kafka_kwargs.setdefault("linger_ms", 5)
        self._producer = kafka_producer(_connection(bootstrap, connection), **kafka_kwargs)
        self.sent = 0

    def send(self, event: dict[str, Any]) -> FutureRecordMetadata:
        """Validate ``event`` and send it; returns the kafka-python future of the record.

        Raises :class:`schemas.InvalidEvent` (nothing is sent) if the event breaks the contract.
        """
        ev = event_from_dict(event)  # raises InvalidEvent with the reason
        try:
            value = encode(event)
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidEvent(f"event is not JSON-serialisable: {exc}") from None
        future = self._producer.send(self.topic, key=ev.user_id.encode(), value=value)
        self.sent += 1
        return future

    def send_item(self, item: dict[str, Any], topic: str = "items") -> FutureRecordMetadata:
        """Validate an item record (see ``schemas/items.schema.json``) and send it to the catalogue topic
        (key = item_id). Raises :class:`schemas.items.InvalidItem` (nothing is sent) if it breaks the contract."""
        it = item_from_dict(item)
        try:
            value = encode(item)
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidItem(f"item is not JSON-serialisable: {exc}") from None
        if len(value) > MAX_ITEM_BYTES:
            raise InvalidItem(f"message of {len(value)} bytes is over the {MAX_ITEM_BYTES}-byte limit", "too_large")
        future = self._producer.send(topic, key=it.item_id.encode(), value=value)
        self.sent += 1
        return future

    def delete_item(self, item_id: str, topic: str = "items") -> FutureRecordMetadata:
        """Remove an item's metadata from the catalogue (a tombstone: the item is unknown again)."""
        if not item_id or len(item_id) > 128:
            raise InvalidItem("item_id must be 1 to 128 characters", "bad_key")
        future = self._producer.send(topic, key=item_id.encode(), value=None)
        self.sent += 1
        return future

    def send_raw(
        self, key: bytes | None, value: bytes | None, *, topic: str | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> FutureRecordMetadata:
        """Send bytes as they are, with no validation (to exercise the dead-letter path)."""
        future = self._producer.send(topic or self.topic, key=key, value=value, headers=headers)
        self.sent += 1
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record sent so far is acknowledged (or ``timeout`` seconds pass)."""
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush and release the connection."""
        self._producer.close(timeout=timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RecommendationConsumer:
    """Read typed :class:`schemas.Recommendation` messages from the ``recommendations`` topic.

    ``group_id=None`` reads every partition without committing offsets (each consumer sees
    everything; the topic must exist); with a group, partitions are shared among its members
    and offsets committed. ``from_beginning`` picks the start when there is no committed offset;
    without a group, ``from_beginning=False`` means "messages written after this constructor". Iteration blocks
    for new messages; with ``idle_timeout_s`` it ends after that long without one.
    A message that is not a valid recommendation raises ``ValueError`` naming its
    topic/partition/offset (``errors="raise"``), or is logged and counted in ``invalid``
    (``errors="skip"``). ``bootstrap`` and ``connection`` work as for :class:`EventProducer`.

    >>> c = RecommendationConsumer("127.0.0.1:9092", idle_timeout_s=2.0)  # doctest: +SKIP
    >>> [rec.user_id for rec in c.poll(timeout=1.0)]                       # doctest: +SKIP
    ['u-42']
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        topic: str = "recommendations",
        group_id: str | None = None,
        from_beginning: bool = True,
        *,
        connection: KafkaConnection | None = None,
        idle_timeout_s: float | None = None,
        errors: Literal["raise", "skip"] = "raise",
        **kafka_kwargs: Any,
    ):
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        self.topic = topic
        self.errors = errors
        self.invalid = 0
        if idle_timeout_s is not None:
            kafka_kwargs.setdefault("consumer_timeout_ms", int(idle_timeout_s * 1000))
        self._consumer = kafka_consumer(
            _connection(bootstrap, connection),
            group_id=group_id,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=group_id is not None,
            **kafka_kwargs,
        )
        try:
            if group_id is None:
                self._assign_all(from_beginning)
            else:
                self._consumer.subscribe([topic])
        except BaseException:
            self._consumer.close()
            raise

    def _assign_all(self, from_beginning: bool) -> None:
        """Without a group, read every partition; a "latest" start is fixed now, not at first poll."""
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise ValueError(f"topic {self.topic!r} does not exist on the broker (is it created?)")
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        if not from_beginning:
            for tp in tps:
                self._consumer.position(tp)

    def _decode(self, record: Any) -> Recommendation | None:
        try:
            if record.value is None:
                raise msgspec.ValidationError("empty value (tombstone)")
            return decode_recommendation(record.value)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            where = f"{record.topic}[{record.partition}]@{record.offset}"
            if self.errors == "raise":
                raise ValueError(f"invalid recommendation at {where}: {exc}") from None
            self.invalid += 1
            log.warning("skipping invalid recommendation at %s: %s", where, exc)
            return None

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Recommendation]:
        """Wait up to ``timeout`` seconds and return what arrived (possibly nothing)."""
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        out = []
        for records in batches.values():
            for record in records:
                rec = self._decode(record)
                if rec is not None:
                    out.append(rec)
        return out

    def __iter__(self) -> Iterator[Recommendation]:
        for record in self._consumer:
            rec = self._decode(record)
            if rec is not None:
                yield rec

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> RecommendationConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
