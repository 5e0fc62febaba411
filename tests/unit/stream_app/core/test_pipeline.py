"""The pipeline's learning survives a batch that fails half-way."""

from __future__ import annotations

import time

import pytest

from schemas import Event
from stream_app.core.logic import to_context
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import UserState, apply_event


def batch_of(p: Pipeline, n: int) -> list[Pending]:
    states: dict[str, UserState] = {}
    out = []
    for off in range(n):
        user = f"u{off % 5}"
        ev = Event(f"e{off}", user, f"i{off % 13}", "click", float(off))
        st = states.get(user) or UserState()
        before = to_context(user, st)
        new, _ = apply_event(st, ev, off)
        states[user] = new
        out.append(Pending(ev, 0, off, before, to_context(user, new), time.perf_counter()))
    return out


def test_a_batch_that_fails_half_way_is_learned_when_its_events_are_retried(monkeypatch):
    p = Pipeline()
    batch = batch_of(p, 40)
    real = p.ranker.rank_many_with_sources
    calls = {"n": 0}

    def fails_in_the_second_round(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a bug in the middle of a batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(p.ranker, "rank_many_with_sources", fails_in_the_second_round)
    with pytest.raises(RuntimeError):
        p.score(batch)
    assert p.ranker_offsets == {}  # nothing counts as learned from a batch that failed
    monkeypatch.setattr(p.ranker, "rank_many_with_sources", real)
    for pending in batch:  # what the scorer does after a failed batch: each event alone
        p.score([pending])
    assert p.ranker_offsets == {0: 39}
    assert p.ranker.version >= 40  # every event learned (the first round's ones twice)


def test_clicks_on_a_funnel_are_credited_to_the_list_where_the_user_met_the_item():
    """On a view -> click funnel the list pushed after the view leaves the viewed item out, so the
    last list alone misses every click that follows its view; attributed to the lists where the
    user met the item (within the window) the click counts."""
    from stream_app.data.synthetic import generate

    p = Pipeline()
    states: dict[str, UserState] = {}
    clicks = on_last_list = 0
    for off, raw in enumerate(generate(3000, n_users=40, n_items=120, seed=3)):
        ev = Event(raw["event_id"], raw["user_id"], raw["item_id"], raw["type"], raw["ts"])
        if ev.type == "click":
            clicks += 1
            on_last_list += ev.item_id in p.live.last_shown(ev.user_id)
        st = states.get(ev.user_id) or UserState()
        before = to_context(ev.user_id, st)
        new, _ = apply_event(st, ev, off)
        states[ev.user_id] = new
        p.score([Pending(ev, 0, off, before, to_context(ev.user_id, new), time.perf_counter())])
    live = p.live.snapshot()
    assert live["clicks"] == clicks > 100
    assert live["ctr"] > 2 * on_last_list / clicks
    assert live["purchases"] > 10 and live["conversion"] > 0
