"""Acknowledge an input record only once every output it caused is durably written.

A worker's outputs (recommendations, dead letters, changelog records) are queued in the
producer, which answers each with a delivery future. The producer's flush before a commit does
not raise when a batch failed, so a failed send would be committed over and lost. Instead, the
scorer and the ingest agent hand the :class:`Output` records of a group of inputs to the
:class:`Confirmer` together with the inputs' acknowledgement handles; the confirmer waits for
every delivery (in a task of its own, so scoring goes on), sends a failed record again with
back-off, and acknowledges the inputs only when all their outputs are written. A failure that
does not heal within ``retry_s`` is fatal: the inputs are never acknowledged (so their offsets
are never committed), and ``on_fatal`` stops the worker loudly; the restart replays them.

>>> import asyncio
>>> async def demo():
...     acked = []
...     async def ack(handle): acked.append(handle)
...     loop = asyncio.get_running_loop()
...     done = loop.create_future(); done.set_result("written")
...     c = Confirmer(resend=None, ack=ack)
...     task = asyncio.create_task(c.run())
...     await c.confirm([Output("recs", b"k", b"v", None, None, done)], ["h1", "h2"])
...     await c.drain()
...     task.cancel()
...     return acked
>>> asyncio.run(demo())
['h1', 'h2']
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Ack = Callable[[Any], Awaitable[Any]]
Resend = Callable[["Output"], Awaitable["Output"]]
OnFatal = Callable[["Output", BaseException], None]


@dataclass(slots=True)
class Output:
    """One record a worker sent, and what the producer answered (a delivery future, or None)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None
    partition: int | None
    delivery: Any
    """An awaitable that completes when the broker has the record (None: written already)."""

    def describe(self) -> str:
        where = self.topic if self.partition is None else f"{self.topic}[{self.partition}]"
        size = len(self.value) if self.value is not None else 0
        return f"topic={where} key={self.key!r:.80} bytes={size}"


class OutputFailed(RuntimeError):
    """An output could not be written within the retry window: the worker must stop."""


def failed(exc: BaseException) -> asyncio.Future[Any]:
    """A delivery that already failed with ``exc`` (a send that raised instead of queueing)."""
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    fut.set_exception(exc)
    return fut


async def delivered(output: Output) -> BaseException | None:
    """Wait for ``output``'s delivery; the error if it failed."""
    if output.delivery is None:
        return None
    try:
        await output.delivery
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return exc
    return None


class Confirmer:
    """Acknowledges groups of inputs, in order, once their outputs are written."""

    def __init__(self, resend: Resend | None, ack: Ack, retry_s: float = 30.0, backoff_s: float = 0.2,
                 max_backoff_s: float = 5.0, max_pending: int = 256, on_fatal: OnFatal | None = None) -> None:
        self.resend = resend
        self.ack = ack
        self.retry_s = retry_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_fatal = on_fatal
        self.queue: asyncio.Queue[tuple[Sequence[Output | None], Sequence[Any]]] = asyncio.Queue(max_pending)
        self.retried = 0
        """Records sent again after a failed delivery."""
        self.failed: OutputFailed | None = None
        """The fatal failure, once one happened (nothing is acknowledged after it)."""
        self._busy = False
        self._wait = 0.0
        """The wait before the next resend: grows while resends fail, back to 0 once one succeeds."""

    async def confirm(self, outputs: Sequence[Output | None], handles: Sequence[Any]) -> None:
        """Queue a group: ``handles`` are acknowledged once every one of ``outputs`` is written.

        Waits while ``max_pending`` groups are unconfirmed (back-pressure on the caller).
        """
        await self.queue.put((outputs, handles))

    async def drain(self) -> None:
        """Wait until every queued group is confirmed (or the confirmer failed)."""
        while not self.queue.empty() or self._busy:
            if self.failed is not None:
                return
            await asyncio.sleep(0.001)

    async def run(self) -> None:
        """Loop forever: confirm the oldest group, then acknowledge its inputs."""
        while True:
            outputs, handles = await self.queue.get()
            self._busy = True
            try:
                await self._write_group([o for o in outputs if o is not None])
                for handle in handles:
                    await self.ack(handle)
            except OutputFailed as exc:
                self.failed = exc
                return  # acknowledge nothing more: what is not acknowledged is never committed
            finally:
                self._busy = False

    async def _write_group(self, outputs: list[Output]) -> None:
        """Return once every output is written, sending failed ones again (all at once, with back-off).

        The back-off is shared by the groups: once a resend succeeds, the next failed group (an
        outage that has healed meanwhile) is sent again at once, not after a wait of its own.
        """
        failures = await self._failures(outputs)
        if not failures:
            return
        deadline = time.monotonic() + self.retry_s
        while failures:
            output, error = failures[0]
            if self.resend is None or time.monotonic() + self._wait > deadline:
                log.critical("could not write %d record(s) within %.0fs, e.g. %s: %r; stopping without "
                             "acknowledging their input (it is processed again after the restart)",
                             len(failures), self.retry_s, output.describe(), error)
                if self.on_fatal is not None:
                    self.on_fatal(output, error)
                raise OutputFailed(f"{output.describe()}: {error!r}") from error
            if self._wait:
                log.warning("writing %d record(s) failed, e.g. %s (%r); sending them again in %.1fs",
                            len(failures), output.describe(), error, self._wait)
                await asyncio.sleep(self._wait)
            self.retried += len(failures)
            again = [await self.resend(o) for o, _ in failures]
            failures = await self._failures(again)
            self._wait = min(max(self._wait * 2, self.backoff_s), self.max_backoff_s) if failures else 0.0

    @staticmethod
    async def _failures(outputs: list[Output]) -> list[tuple[Output, BaseException]]:
        errors = [await delivered(o) for o in outputs]
        return [(o, e) for o, e in zip(outputs, errors) if e is not None]
