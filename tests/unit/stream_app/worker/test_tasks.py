"""The event-loop watch sees a blocked loop."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from stream_app.core.metrics import WorkerMetrics
from stream_app.worker.tasks import cpu_wait_s, freeze_startup_heap, freeze_survivors, watch_loop


async def _blocked(m: WorkerMetrics, block_s: float) -> None:
    task = asyncio.create_task(watch_loop(m, period_s=0.02))
    await asyncio.sleep(0.1)
    time.sleep(block_s)  # holds the loop, as a long synchronous call would
    await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_blocked_loop_shows_as_lag():
    m = WorkerMetrics()
    asyncio.run(_blocked(m, 0.3))
    assert m.value("streamrec_event_loop_lag_max_seconds") >= 0.25
    assert m.value("streamrec_event_loop_lag_seconds_count") >= 5
    # the loop was held by this process's own work, not by waiting for a CPU
    assert 0.2 <= m.value("streamrec_event_loop_held_max_seconds") <= m.value("streamrec_event_loop_lag_max_seconds")


def test_a_free_loop_shows_little_lag():
    m = WorkerMetrics()
    asyncio.run(_blocked(m, 0.0))
    assert m.value("streamrec_event_loop_lag_max_seconds") < 0.25
    assert m.value("streamrec_event_loop_held_max_seconds") < 0.25


def test_the_cpu_wait_counter_reads_the_kernel_where_there_is_one():
    w = cpu_wait_s()
    if w is None:
        pytest.skip("no /proc/thread-self/schedstat on this system")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.05:  # the counter never goes back
        pass
    w2 = cpu_wait_s()
    assert w2 is not None and w2 >= w


def test_the_freezer_keeps_survivors_out_of_later_full_passes():
    import gc

    async def go() -> int:
        keep = [[i] for i in range(1000)]  # long-lived containers the collector would walk
        task = asyncio.create_task(freeze_survivors(period_s=0.01))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        frozen = gc.get_freeze_count()
        del keep
        return frozen

    try:
        gc.unfreeze()
        assert asyncio.run(go()) >= 1000
        gc.unfreeze()
        assert freeze_startup_heap() == gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_checkpoint_gives_the_loop_turns_while_it_encodes(tmp_path):
    from types import SimpleNamespace

    from schemas import Event
    from stream_app.core.pipeline import Pending, Pipeline
    from stream_app.worker import tasks
    from stream_app.worker.checkpoints import CheckpointStore

    p, store = Pipeline(), {}
    batch = [Pending(Event(f"e-{k}", f"u-{k % 9}", f"i-{k}", "click", 100.0 + k), 0, k) for k in range(8000)]
    p.prepare(batch, lambda part, user: store.get(user))
    p.score(batch)
    w = SimpleNamespace(scorer=SimpleNamespace(models_lock=asyncio.Lock()), pipeline=p, metrics=WorkerMetrics(),
                        checkpoints=CheckpointStore(tmp_path / "checkpoint.msgpack"))
    steps, turns = 0, []

    def counted(offsets):
        nonlocal steps
        inner = Pipeline.checkpoint_steps(p, offsets)
        while True:
            try:
                next(inner)
            except StopIteration as done:
                return done.value
            steps += 1
            time.sleep(0.002)  # a step of real work
            yield None

    p.checkpoint_steps = counted  # type: ignore[method-assign]

    async def ticker() -> None:
        while not (tmp_path / "checkpoint.msgpack").exists():
            turns.append(steps)
            await asyncio.sleep(0)

    async def both() -> bool:
        done, _ = await asyncio.gather(tasks.write_checkpoint(w), ticker())
        return done

    assert asyncio.run(both())
    during = [s for s in turns if s > 0]
    assert steps > 5 and len(set(during)) >= 2, (steps, turns[-5:])  # the loop ran between steps, not only after them
    restored = Pipeline()
    assert CheckpointStore(tmp_path / "checkpoint.msgpack").restore_into(restored)
    assert restored.ranker_offsets == p.ranker_offsets
