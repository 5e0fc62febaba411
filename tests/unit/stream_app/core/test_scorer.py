"""The scorer makes room in the online models between batches, and a restore keeps the bound."""

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
