"""The background tasks of a worker: the scorer loop, the model watcher, checkpoints and gauges."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, TypeVar, cast

from stream_app.core.experiment_report import report

if TYPE_CHECKING:
    from stream_app.core.metrics import WorkerMetrics
    from stream_app.worker.build import Worker

log = logging.getLogger(__name__)
R = TypeVar("R")



def quiet_libraries(level_name: str) -> None:
    """Faust's worker leaves the root logger at DEBUG and filters in its handler, so every
    ``log.debug`` in aiokafka and Faust still builds a record (a sixth of the time of a busy
    worker). Set the levels on the loggers themselves."""
    found = logging.getLevelName(level_name.upper())
    level = found if isinstance(found, int) else logging.INFO
    logging.getLogger().setLevel(level)
    for name in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(name).setLevel(max(level, logging.INFO if name == "faust" else logging.WARNING))


TURN_S = 0.005
"""Work a checkpoint does between two turns of the event loop (its steps are shorter still)."""


async def in_turns(steps: Generator[None, None, R], turn_s: float = TURN_S) -> R:
    """Run a generator of bounded steps on the event loop, giving the loop a turn every ``turn_s``.

    >>> def steps():
    ...     for _ in range(3):
    ...         yield None
    ...     return "done"
    >>> asyncio.run(in_turns(steps()))
    'done'
    """
    turn = time.perf_counter()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return cast("R", done.value)
        if time.perf_counter() - turn >= turn_s:
            await asyncio.sleep(0)
            turn = time.perf_counter()


async def write_checkpoint(w: Worker, wait_s: float | None = None) -> bool:
    """Encode the online models while nothing changes them, then write the file.

    The encoding runs on the event loop in short steps with turns between (:func:`in_turns`,
    :meth:`Pipeline.checkpoint_steps`), so the loop's other work (web requests, heartbeats, the
    consumer, timers) goes on meanwhile; scoring waits for the models. (In a thread, the
    encoding took the GIL each time the loop's thread let it go, and held it for a switch
    interval.) Returns False when the models were not free within ``wait_s``.
    """
    lock = w.scorer.models_lock
    try:
        await asyncio.wait_for(lock.acquire(), wait_s)
    except TimeoutError:
        return False
    try:
        data = await in_turns(w.pipeline.checkpoint_steps(w.pipeline.checkpoint_offsets()))
    finally:
        lock.release()
    await asyncio.to_thread(w.checkpoints.write, data)
    w.metrics.checkpoints.inc()
    w.metrics.online_learned.set(w.pipeline.ranker.version or 0)
    return True


async def update_gauges(w: Worker) -> None:
    """Expire return labels, publish live quality, and read the consumer lag (best effort)."""
    async with w.scorer.models_lock:
        w.pipeline.expire_returns()
    live = w.pipeline.live.snapshot()
    m = w.metrics
    m.live_hr.set(live["hr@10"])
    m.live_ndcg.set(live["ndcg@10"])
    m.live_ctr.set(live["ctr"])
    m.live_conversion.set(live["conversion"])
    m.returning.set(live["returning_rate"])
    m.online_learned.set(w.pipeline.ranker.version or 0)
    m.item_events.set(w.pipeline.ranker.popularity.n_events)
    m.items_held.set(len(w.pipeline.ranker.index.ids))
    m.filtered.set(w.pipeline.lists.dropped)
    publish_variants(m, w.pipeline.live.variants())
    try:
        for partition, lag in (await read_lag(w)).items():
            m.lag.labels(str(partition)).set(lag)
    except Exception:  # lag is best effort while the consumer rebalances
        log.debug("consumer lag not available yet", exc_info=True)


def freeze_startup_heap() -> int:
    """Collect once, then keep every object alive now out of the cycle collector's later passes.

    A worker holds some 300,000 objects from its start (torch, Faust, the models' code); each
    full pass of Python's cycle collector walks them all, holding the event loop 150-300 ms, a
    few times a minute under load. Frozen, they are not walked again (they live as long as the
    process anyway); what the stream creates later is collected as before. Returns the count.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def freeze_survivors(period_s: float = 60.0) -> None:
    """Every ``period_s``, keep what is alive out of the cycle collector's later full passes.

    The models' items and users live long and churn (a bounded catalogue forgets old items and
    takes new ones), so Python's full passes come often and walk every long-lived object: 50-60 ms
    each at 100,000 items. Frozen now and then, a pass walks only what arrived since. Objects freed
    by their reference count (nearly all the stream's garbage) are freed as before; only a cycle
    alive at a freeze and dropped later is never collected (the worker's passes find a handful a
    minute).
    """
    while True:
        await asyncio.sleep(period_s)
        gc.freeze()


def cpu_wait_s() -> float | None:
    """Seconds the calling thread has waited, runnable, for a CPU (Linux schedstat; None elsewhere).

    >>> w = cpu_wait_s()
    >>> w is None or w >= 0.0
    True
    """
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:  # a kernel counter, not disk I/O
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


async def watch_loop(m: WorkerMetrics, period_s: float = 0.1, window_s: float = 10.0) -> None:
    """Measure how late the event loop wakes a timer: anything that holds the loop (a long batch,
    a checkpoint on the loop, a big copy) shows as lag, in ``streamrec_event_loop_lag_seconds``;
    ``streamrec_event_loop_lag_max_seconds`` is the latest of the last ``window_s`` seconds.

    On a machine with more runnable threads than CPUs a loop is also late while its thread waits
    for a CPU; ``streamrec_event_loop_held_max_seconds`` takes that wait (the kernel counts it)
    out, leaving what the worker's own work held the loop.
    """
    loop = asyncio.get_running_loop()
    worst, worst_before, window_start = 0.0, 0.0, loop.time()
    held, held_before = 0.0, 0.0
    while True:
        t, waited = loop.time(), cpu_wait_s()
        await asyncio.sleep(period_s)
        now, waited_now = loop.time(), cpu_wait_s()
        late = max(0.0, now - t - period_s)
        m.loop_lag.observe(late)
        worst = max(worst, late)
        if waited is not None and waited_now is not None:
            late = max(0.0, late - (waited_now - waited))
        held = max(held, late)
        if now - window_start >= window_s:  # the gauges cover this window and the one before
            worst_before, worst, held_before, held, window_start = worst, 0.0, held, 0.0, now
        m.loop_lag_max.set(max(worst, worst_before))
        m.loop_held_max.set(max(held, held_before))


FIGURES = {"hr@10": "hr10", "ndcg@10": "ndcg10", "ctr": "ctr", "conversion": "conversion"}


def publish_variants(m: WorkerMetrics, variants: dict[str, dict[str, float]]) -> None:
    """Each experiment variant's live figures, intervals and interleaving credits as gauges."""
    for name, sums in variants.items():
        r = report(sums)
        m.variant_judged.labels(name).set(r["judged"])
        for figure, label in FIGURES.items():
            for stat, value in r[figure].items():
                if value is not None:
                    m.variant_quality.labels(name, label, stat).set(value)
        inter = r.get("interleaving")
        if inter is not None:
            for team in ("a", "b"):
                m.interleaving.labels(name, team).set(inter[team])
            m.interleaving.labels(name, "tie").set(inter["ties"])
            for stat, value in inter["share_b"].items():
                if value is not None:
                    m.interleaving_preference.labels(name, stat).set(value)
            m.interleaving_preference.labels(name, "p_value").set(inter["p_value"])


async def read_lag(w: Worker) -> dict[int, int]:
    """Records behind the end of each events partition this worker holds."""
    consumer = w.app.consumer
    name = w.topics.events_name
    lag: dict[int, int] = {}
    for tp in consumer.assignment():
        if tp.topic != name:
            continue
        hw = consumer.highwater(tp)
        pos = await consumer.position(tp)
        if hw is not None and pos is not None:
            lag[tp.partition] = max(0, hw - pos)
    return lag


def register_tasks(w: Worker) -> None:
    """Declare the ingest agent and the background tasks on the worker's app."""
    app = w.app
    ingest = w.ingest

    async def ingest_agent(stream):  # type: ignore[no-untyped-def]
        await ingest.run(stream)

    w.ingest_agent = app.agent(w.topics.events, name="ingest")(ingest_agent)

    async def run_scorer() -> None:
        quiet_libraries(w.settings.log_level)
        if w.shared is not None:  # start scoring with what the group knows about items
            await w.shared.wait_ready()
        if w.catalogue is not None:  # and with the whole item catalogue
            await w.catalogue.ready.wait()
        frozen = freeze_startup_heap()
        log.info("froze %d objects of the start-up out of the cycle collector's passes", frozen)
        await w.scorer.run(ingest.send_recommendation, ingest.ack, ingest.dead_letter_pending)

    async def run_confirmer() -> None:
        if w.confirmer is not None:
            await w.confirmer.run()

    async def run_model_watcher() -> None:
        await w.watcher.run(w.settings.model_poll_s)

    async def checkpoint_online_models() -> None:
        await write_checkpoint(w)

    async def gauges() -> None:
        await update_gauges(w)

    async def run_shared_reader() -> None:
        if w.shared is not None:
            await w.shared.run()

    async def share_ranker_weights() -> None:
        if w.shared is not None and w.shared.ready.is_set():
            await w.shared.share_weights(w.send_shared)

    async def run_catalogue_reader() -> None:
        if w.catalogue is not None:
            await w.catalogue.run()

    async def run_loop_watch() -> None:
        await watch_loop(w.metrics)

    async def run_freezer() -> None:
        await freeze_survivors()

    app.task(run_scorer)
    app.task(run_loop_watch)
    app.task(run_freezer)
    app.task(run_catalogue_reader)
    if w.shared is not None and w.settings.share_weights_s > 0:
        app.timer(interval=w.settings.share_weights_s, name="share_ranker_weights")(share_ranker_weights)
    app.task(run_shared_reader)
    app.task(run_confirmer)
    app.task(run_model_watcher)
    app.timer(interval=w.settings.checkpoint_interval_s, name="checkpoint_online_models")(checkpoint_online_models)

    async def checkpoint_at_shutdown(*_: object, **__: object) -> None:
        # a stopped worker loses no learning: its next start finds the models where they were
        try:
            if await write_checkpoint(w, wait_s=10.0):
                log.info("online models checkpointed at shutdown (offsets %s)", w.pipeline.ranker_offsets)
            else:
                log.warning("online models not checkpointed at shutdown: a batch held them for 10 s")
        except Exception:
            log.exception("could not checkpoint the online models at shutdown")

    app.on_before_shutdown.connect(checkpoint_at_shutdown)
    app.timer(interval=2.0, name="update_gauges")(gauges)
