"""Event-loop lag while the online models are checkpointed: on the loop, in a thread, in steps.

Fills a pipeline with a synthetic stream over a catalogue of ``--items`` items, then runs an
asyncio loop whose ticker wakes every millisecond and records how late it woke, while the
models' checkpoint is encoded on the loop in one call per model, on the loop in steps with a
turn for the loop every 5 ms (what a worker does now, ``stream_app.worker.tasks.write_checkpoint``)
and in a thread in steps (what a worker did before: beside a busy loop, the thread takes the GIL
each time the loop's thread lets it go).

    .venv/bin/python scripts/checkpoint_lag.py --items 120000 --events 300000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas import event_from_dict
from stream_app.core.logic import to_context
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import UserState, apply_event
from stream_app.data.synthetic import generate
from stream_app.worker.tasks import in_turns

STEP_S = 0.005


def filled(events: int, users: int, items: int) -> Pipeline:
    p = Pipeline()
    states: dict[str, UserState] = {}
    batch: list[Pending] = []
    for k, raw in enumerate(generate(events, n_users=users, n_items=items, seed=0)):
        ev = event_from_dict(raw)
        st = states.get(ev.user_id, UserState())
        new, _ = apply_event(st, ev, k)
        states[ev.user_id] = new
        batch.append(Pending(ev, 0, k, before=to_context(ev.user_id, st), after=to_context(ev.user_id, new)))
        if len(batch) == 256:
            p.score(batch)
            batch = []
    return p


async def lag_during(work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """(seconds the work took, the longest the ticker was late) while ``work()`` runs."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    await work()
    took = time.perf_counter() - t0
    done.set()
    await tick
    return took, worst


async def main_async(p: Pipeline, repeats: int) -> None:
    async def on_loop() -> None:  # one encoder call per model
        p.ranker.to_bytes(), p.purchase.to_bytes(), p.returns.to_bytes()

    async def in_thread() -> None:
        offsets = p.checkpoint_offsets()
        await asyncio.to_thread(p.checkpoint, offsets)

    async def in_steps() -> None:
        await in_turns(p.checkpoint_steps(), STEP_S)

    for name, work in (("on the loop", on_loop), ("loop, steps", in_steps), ("thread, steps", in_thread)):
        runs = [await lag_during(work) for _ in range(repeats)]
        print(f"{name:13s}: encode {min(r[0] for r in runs) * 1000:7.1f} ms (best of {repeats}), "
              f"loop late by up to {max(r[1] for r in runs) * 1000:7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=120_000)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if min(args.items, args.events, args.users, args.repeats) < 1:
        ap.error("every count must be at least 1")
    t0 = time.perf_counter()
    p = filled(args.events, args.users, args.items)
    size = len(p.checkpoint())
    print(f"{len(p.ranker.popularity.counts):,} items learned from {args.events:,} events in "
          f"{time.perf_counter() - t0:.0f} s; checkpoint {size / 1e6:.1f} MB")
    asyncio.run(main_async(p, args.repeats))


if __name__ == "__main__":
    main()
