"""Applying events to a user's state: counts, bounds, purchases, idempotence."""

from __future__ import annotations

import random

from models.base import UserContext
from schemas import Event
from stream_app.core.logic import exclusions, live_hit, split_waves, to_context, to_interaction
from stream_app.core.state import UserState, apply_event, decode_state, encode_state


def ev(i: int, item: str, typ: str = "click") -> Event:
    return Event(f"e-{i}", "u-1", item, typ, float(i))


def test_replaying_any_prefix_changes_nothing():
    rng = random.Random(0)
    events = [ev(i, f"i-{rng.randrange(20)}", rng.choice(["view", "click", "add_to_cart", "purchase"]))
              for i in range(300)]
    state = UserState()
    for off, e in enumerate(events):
        state, applied = apply_event(state, e, off)
        assert applied
    again = state
    for off, e in enumerate(events[:150]):  # a crash made these come again
        again, applied = apply_event(again, e, off)
        assert not applied
    assert encode_state(again) == encode_state(state)
    assert sum(state.counts) == 300


def test_bounds_and_purchases():
    state = UserState()
    for i in range(120):
        state, _ = apply_event(state, ev(i, f"i-{i}", "purchase" if i % 2 else "view"), i,
                               recent_max=10, purchased_max=5)
    assert state.recent == [f"i-{i}" for i in range(110, 120)]
    assert state.purchased == [f"i-{i}" for i in range(111, 120, 2)]
    assert state.counts == [60, 0, 0, 60]
    assert state.first_ts == 0.0 and state.last_ts == 119.0


def test_repeat_purchase_kept_once():
    state = UserState()
    for i in range(3):
        state, _ = apply_event(state, ev(i, "i-1", "purchase"), i)
    assert state.purchased == ["i-1"] and state.counts[3] == 3


def test_state_round_trip_and_size():
    state = UserState()
    for i in range(500):
        state, _ = apply_event(state, ev(i, f"item-{i:06d}", "purchase" if i % 10 == 0 else "view"), i)
    raw = encode_state(state)
    assert decode_state(raw) == state
    assert decode_state(None) == UserState()
    assert len(raw) < 4096


def test_exclusions_and_context():
    state, _ = apply_event(UserState(), ev(1, "i-9", "purchase"), 1)
    state, _ = apply_event(state, ev(2, "i-3", "click"), 2)
    ctx = to_context("u-1", state)
    assert ctx.recent_items == ("i-9", "i-3") and ctx.purchased == frozenset({"i-9"})
    assert exclusions(ctx, ev(2, "i-3")) == {"i-9", "i-3"}
    assert ctx.counts == {"view": 0, "click": 1, "add_to_cart": 0, "purchase": 1}


def test_stored_state_and_model_context_apply_events_alike():
    rng = random.Random(2)
    state, ctx = UserState(), UserContext.empty("u-1")
    for i in range(400):
        e = ev(i, f"i-{rng.randrange(30)}", rng.choice(["view", "click", "add_to_cart", "purchase"]))
        state, _ = apply_event(state, e, i, recent_max=7, purchased_max=4)
        ctx = ctx.after(to_interaction(e), 7, 4)
        assert to_context("u-1", state) == ctx
    assert len(ctx.recent_items) == 7 and len(ctx.purchased) == 4
    default = UserContext.empty("u-1")
    state = UserState()
    for i in range(300):
        e = ev(i, f"i-{i}", "purchase")
        state, _ = apply_event(state, e, i)
        default = default.after(to_interaction(e))
    assert to_context("u-1", state) == default  # the same bounds by default (50 recent, 200 purchased)
    assert len(default.recent_items) == 50 and len(default.purchased) == 200


def test_split_waves_keeps_order_and_users_unique():
    users = ["a", "b", "a", "c", "b", "b"]
    waves = split_waves(users, key=lambda u: u)
    assert [u for w in waves for u in w] == users
    assert all(len(w) == len(set(w)) for w in waves)


def test_live_hit():
    assert live_hit(["a", "b"], "a") == (1, 1.0)
    assert live_hit(["a", "b"], "z") == (0, 0.0)
    assert live_hit([f"x{i}" for i in range(20)], "x15")[0] == 0  # beyond the top 10
