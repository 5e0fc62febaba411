"""The scorer: turns queued events into recommendation messages, one micro-batch at a time.

The ingest agent validates each record and queues it here without acknowledging it. This task
drains the queue one micro-batch at a time: it applies the batch to the users' states (one read
per user, one coalesced write per user to RocksDB and the changelog, see
:class:`UserStateStore`), learns and ranks the whole batch in one pass, publishes the
messages, and only then acknowledges the records, so a crash before publication replays them
(at-least-once, never lost; state is applied once, by offset).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from schemas import encode
from stream_app.core.delivery import Confirmer
from stream_app.core.metrics import WorkerMetrics
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.stats import LatencyReservoir
from stream_app.core.store import UserStateStore

log = logging.getLogger(__name__)

Send = Callable[[bytes, bytes], Awaitable[Any]]
Ack = Callable[[Any], Awaitable[Any]]
DeadLetter = Callable[[Pending, str], Awaitable[Any]]


class Scorer:
    def __init__(
        self,
        pipeline: Pipeline,
        batch_max: int = 256,
        batch_wait_ms: float = 2.0,
        queue_max: int = 2048,
        last_max: int = 100_000,
        store: UserStateStore | None = None,
        recent_max: int = 50,
        purchased_max: int = 200,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.latencies = LatencyReservoir()
        """Event -> recommendation latencies of the latest events (for the dashboard)."""
        self._suspect_seen = 0
        self._forgotten_seen = 0
        self.confirmer: Confirmer | None = None
        """Acknowledges a batch once its outputs are written; None: acknowledge once they are sent."""
        self.share: Send | None = None
        """Publishes a record of the shared topic (key, value); None: the pipeline does not share."""
        self.running = False
        """Whether the scoring loop has started (the worker's ``/ready``)."""
        self.store = store
        """Where users' states are read and written; None when the caller prepares batches."""
        self.recent_max = recent_max
        self.purchased_max = purchased_max
        self.batch_max = batch_max
        self.batch_wait = batch_wait_ms / 1000.0
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=queue_max)
        self.models_lock = asyncio.Lock()
        """Held while the pipeline's online models change (a batch, a shared update, expiring returns)
        or are read whole (a checkpoint encoded in a thread): take it around any such change."""
        self.last: OrderedDict[str, bytes] = OrderedDict()
        self.last_max = last_max
        self.sent = 0
        self.batches = 0
        self.busy_s = 0.0
        self.last_output_at = 0.0
        self.max_gap_s = 0.0

    async def put(self, item: Pending) -> None:
        await self.queue.put(item)

    def last_recommendation(self, user_id: str) -> bytes | None:
        return self.last.get(user_id)

    async def _next_batch(self) -> list[Pending]:
        q = self.queue
        batch = [await q.get()]
        for _ in range(2):
            while len(batch) < self.batch_max and not q.empty():
                batch.append(q.get_nowait())
            if len(batch) >= self.batch_max or not self.batch_wait:
                break
            await asyncio.sleep(self.batch_wait)
        return batch

    async def run(self, send: Send, ack: Ack, dead_letter: DeadLetter) -> None:
        """Loop forever: score a batch, publish it, acknowledge it.

        If a batch fails, each of its events is retried alone; one that still fails goes to the
        dead-letter topic with the reason, so no event is lost and no partition stalls.
        """
        self.running = True
        while True:
            batch = await self._next_batch()
            self.metrics.queue.set(self.queue.qsize())
            async with self.models_lock:
                try:
                    await self.process(batch, send, ack)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scoring failed for a batch of %d; retrying its events one by one", len(batch))
                    for p in batch:
                        try:
                            await self.process([p], send, ack)
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:
                            log.exception(
                                "scoring failed: partition=%d offset=%d user=%r event=%r",
                                p.partition, p.offset, p.event.user_id, p.event.event_id,
                            )
                            out = await dead_letter(p, f"internal error while scoring: {exc!r}")
                            await self.acknowledge([out], [p.handle], ack)
            await self.upkeep()

    async def upkeep(self, steps: int = 4) -> None:
        """Up to ``steps`` bounded steps of making room in the online models (a bounded item
        catalogue, :meth:`Pipeline.upkeep`), each after the loop had a turn."""
        pipeline = self.pipeline
        for _ in range(steps):
            if not pipeline.upkeep_due():
                break
            await asyncio.sleep(0)
            async with self.models_lock:
                try:
                    pipeline.upkeep()
                except Exception:  # never let making room stop the scoring
                    log.exception("making room in the online models failed; the items held may exceed the bound")
                    break
        cap = pipeline.ranker.capacity
        if cap is not None and cap.forgotten != self._forgotten_seen:
            if cap.forgotten < self._forgotten_seen:  # models restored from a checkpoint: a new count
                self._forgotten_seen = 0
            self.metrics.items_forgotten.inc(cap.forgotten - self._forgotten_seen)
            self._forgotten_seen = cap.forgotten

    async def acknowledge(self, outputs: list[Any], handles: list[Any], ack: Ack) -> None:
        """Acknowledge ``handles`` once ``outputs`` are written (through the confirmer, if any)."""
        if self.confirmer is not None:
            await self.confirmer.confirm(outputs, handles)
            return
        for handle in handles:
            await ack(handle)

    async def process(self, batch: list[Pending], send: Send, ack: Ack) -> None:
        t0 = time.perf_counter()
        if self.store is not None:
            before = self.pipeline.other_topic_states
            states, duplicates = self.pipeline.prepare(batch, self.store.read, self.recent_max, self.purchased_max)
            if self.pipeline.other_topic_states != before:
                self.metrics.other_topic_states.inc(self.pipeline.other_topic_states - before)
            if duplicates:
                self.metrics.duplicates.inc(duplicates)
                suspect = self.pipeline.suspect_replays - self._suspect_seen
                if suspect:
                    self.metrics.suspect_replays.inc(suspect)
                    self._suspect_seen = self.pipeline.suspect_replays
            outputs = await self.store.write(states)
        else:
            outputs = []
        steps = self.pipeline.score_steps(batch)
        turns = 0.0  # time others had the loop between steps: not this batch's work
        while True:  # the event loop gets a turn between bounded steps (the models_lock is held)
            try:
                next(steps)
            except StopIteration as done:
                messages: list[dict[str, Any]] = done.value
                break
            t_turn = time.perf_counter()
            await asyncio.sleep(0)
            turns += time.perf_counter() - t_turn
        outgoing = self.pipeline.take_outgoing()
        if outgoing is not None and self.share is not None:
            for partition, data in outgoing.encode(time.time()).items():
                outputs.append(await self.share(str(partition).encode(), data))
                self.metrics.shared_bytes.labels("out").inc(len(data))
        work = time.perf_counter() - t0 - turns
        self.busy_s += work
        self.metrics.scoring.observe(work)
        self.metrics.batch_size.observe(len(batch))
        for p, msg in zip(batch, messages):
            value = encode(msg)
            user = p.event.user_id
            outputs.append(await send(user.encode(), value))
            self.last[user] = value
            self.last.move_to_end(user)
        while len(self.last) > self.last_max:
            self.last.popitem(last=False)
        now = time.perf_counter()
        if self.last_output_at:
            self.max_gap_s = max(self.max_gap_s, now - self.last_output_at)
        self.last_output_at = now
        self.latencies.extend([now - p.received for p in batch])
        for p in batch:
            self.metrics.latency.observe(now - p.received)
        await self.acknowledge(outputs, [p.handle for p in batch], ack)
        self.sent += len(batch)
        self.batches += 1
        self.metrics.recommendations.inc(len(batch))
