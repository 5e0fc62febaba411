"""Where a worker's output records go: its Faust producer (buffered; flushed before each commit)."""

from __future__ import annotations

from typing import Any, Protocol


class Outbox(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> Any: ...


class ProducerOutbox:
    """Sends through the app's producer; returns the delivery future."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> Any:
        return await self.app.producer.send(topic, key, value, partition, None, headers)
