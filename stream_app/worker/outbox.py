"""Where a worker's output records go: its Faust producer, each send answered by an :class:`Output`.

The :class:`~stream_app.core.delivery.Output` keeps the record and its delivery future, so the
confirmer can wait for it and send it again when it failed. A send that raises (the producer
refused the record outright, e.g. over its size limit) becomes an output whose delivery failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from stream_app.core.delivery import Output, failed

log = logging.getLogger(__name__)


class Outbox(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> Any: ...


class ProducerOutbox:
    """Sends through the app's producer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> Output:
        try:
            delivery = await self.app.producer.send(topic, key, value, partition, None, headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("the producer refused a record for topic=%s: %r", topic, exc)
            delivery = failed(exc)
        return Output(topic, key, value, headers, partition, delivery)

    async def resend(self, output: Output) -> Output:
        """Send ``output``'s record again."""
        return await self.send(output.topic, output.key, output.value, output.headers, output.partition)
