"""The pipeline's learning survives a batch that fails half-way."""

from __future__ import annotations

import time

import pytest

from schemas import Event
from stream_app.core.logic import to_context
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import UserState, apply_event, decode_state


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


def _learn(p: Pipeline, store: dict[str, bytes], events: list[tuple[str, str, int]]) -> int:
    batch = [Pending(Event(f"e-{off}", user, item, "click", 100.0 + off), 0, off) for user, item, off in events]
    states, duplicates = p.prepare(batch, lambda part, user: store.get(user))
    store.update({user: raw for (_, user), raw in states.items()})
    p.score(batch)
    return duplicates


def test_a_recreated_events_topic_starts_the_offsets_over_for_models_and_states():
    p, store = Pipeline(), {}
    p.set_events_topic(11)
    assert _learn(p, store, [("u-1", f"i-{k}", k) for k in range(6)]) == 0
    assert p.ranker_offsets == {0: 5} and p.observe_offsets == {0: 5}
    saved = p.checkpoint()

    restored = Pipeline()
    restored.restore(saved)
    assert restored.events_topic == 11
    assert restored.set_events_topic(11) is False  # the same topic after a restart: nothing changes
    assert restored.set_events_topic(22) is True and restored.topic_changes == 1
    assert restored.ranker_offsets == {} and restored.observe_offsets == {}
    # offsets 0..2 of the new topic: new events for the models and for the user's state
    assert _learn(restored, store, [("u-1", f"n-{k}", k) for k in range(3)]) == 0
    assert restored.other_topic_states == 1
    state = decode_state(store["u-1"])
    assert state.counts[1] == 9 and state.topic == 22 and state.offset == 2
    assert restored.ranker_offsets == {0: 2}
    # and within the new topic, a replay is still a replay
    assert _learn(restored, store, [("u-1", "n-2", 2)]) == 1


def test_an_unknown_topic_id_keeps_comparing_bare_offsets():
    p, store = Pipeline(), {}
    _learn(p, store, [("u-1", "a", 0), ("u-1", "b", 1)])
    assert p.set_events_topic(0) is False
    assert _learn(p, store, [("u-1", "b", 1)]) == 1  # a replay, as before
    p.set_events_topic(7)  # the first id known: states adopt it, offsets stay meaningful
    assert _learn(p, store, [("u-1", "b", 1)]) == 1 and p.topic_changes == 0
    assert decode_state(store["u-1"]).topic == 7  # adopted, the offset kept: later offsets count in it
