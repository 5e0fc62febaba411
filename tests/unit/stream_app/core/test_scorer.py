"""The scorer makes room in the online models between batches (a restore keeps the bound) and
gives the event loop turns while it scores a batch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from schemas import Event
from stream_app.core.logic import to_context
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.scorer import Scorer
from stream_app.core.state import UserState, apply_event
from stream_app.settings import Settings


def new_item_batches(n_batches: int, size: int = 200, users: int = 50) -> list[list[Pending]]:
    """Batches in which nearly every event names an item never seen before."""
    states: dict[str, UserState] = {}
    out: list[list[Pending]] = []
    off = 0
    for _ in range(n_batches):
        batch = []
        for _ in range(size):
            user = f"u{off % users}"
            item = f"hot{off % 7}" if off % 10 == 0 else f"new{off}"
            ev = Event(f"e{off}", user, item, "click", float(off))
            st = states.get(user) or UserState()
            new, _ = apply_event(st, ev, off)
            states[user] = new
            batch.append(Pending(ev, 0, off, to_context(user, st), to_context(user, new), time.perf_counter()))
            off += 1
        out.append(batch)
    return out


async def _score(scorer: Scorer, batches: list[list[Pending]]) -> int:
    sent: list[Any] = []

    async def send(key: bytes, value: bytes) -> None:
        sent.append(key)

    async def ack(handle: Any) -> None:
        return None

    for batch in batches:
        async with scorer.models_lock:
            await scorer.process(batch, send, ack)
        await scorer.upkeep()
    return len(sent)


def test_the_scorer_keeps_the_models_within_the_bound_between_batches():
    p = Pipeline(max_items=1000)
    scorer = Scorer(p)
    sent = asyncio.run(_score(scorer, new_item_batches(60)))
    assert sent == 60 * 200
    index, cap = p.ranker.index, p.ranker.capacity
    assert cap is not None and cap.forgotten > 8000
    assert len(index.ids) <= 1000 + index.headroom
    assert scorer.metrics.value("streamrec_items_forgotten_total") == cap.forgotten
    assert all(f"hot{k}" in index.ids for k in range(7))  # the hot items are never the coldest


def test_a_restored_pipeline_keeps_the_bound():
    p = Pipeline(max_items=1000)
    asyncio.run(_score(Scorer(p), new_item_batches(20)))
    q = Pipeline(max_items=1000)
    q.restore(p.checkpoint())
    assert q.ranker.capacity is not None and q.ranker.index.max_items == 1000
    while q.upkeep():
        pass
    assert len(q.ranker.index.ids) <= 1000


def test_an_unbounded_pipeline_never_forgets():
    p = Pipeline()
    asyncio.run(_score(Scorer(p), new_item_batches(10)))
    assert p.ranker.capacity is None and not p.upkeep_due()
    assert len(p.ranker.index.ids) > 1800


@pytest.mark.parametrize("value", [1, 999])
def test_a_tiny_bound_is_refused(value):
    with pytest.raises(ValueError, match="at least 1000"):
        Settings(max_items=value)


def test_the_event_loop_gets_turns_while_a_large_batch_is_scored():
    """A batch of 200 is learned and ranked in pieces of ``round_max``; between them other tasks run."""

    async def go(round_max: int) -> tuple[int, int, list[list[str]]]:
        p = Pipeline(round_max=round_max)
        scorer = Scorer(p)
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        batches = new_item_batches(2)
        await _score(scorer, batches)
        stop = True
        await task
        return ticks - before, len(scorer.last), [[b.event.item_id for b in batch] for batch in batches]

    pieces, answered, _ = asyncio.run(go(round_max=25))
    whole, answered_whole, _ = asyncio.run(go(round_max=0))
    assert answered == answered_whole == 50
    # 200 events of 50 users: 4 rounds of 50, cut into 2 pieces each, plus the deep step, per batch
    assert pieces >= 2 * 8 and pieces > whole


def test_a_batch_cut_in_pieces_answers_every_event_in_order_and_learns_every_offset():
    """Cutting a round changes when learning lands, never which event a message answers or its order."""
    batch = new_item_batches(1, size=120, users=120)[0]
    a, b = Pipeline(round_max=0), Pipeline(round_max=7)
    ma, mb = a.score(batch), b.score(batch)
    assert [m["event_id"] for m in ma] == [m["event_id"] for m in mb] == [p.event.event_id for p in batch]
    assert a.ranker_offsets == b.ranker_offsets == {0: 119}
