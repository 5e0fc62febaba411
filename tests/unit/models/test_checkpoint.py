"""A checkpoint encoded in steps is byte for byte the one encoded in one piece."""

from __future__ import annotations

import random

import pytest

from models.base import Interaction, UserContext
from models.checkpoint import dump, dump_steps, load
from models.hybrid import HybridRecommender


def _run(steps) -> tuple[bytes, int]:
    n = 0
    while True:
        try:
            next(steps)
            n += 1
        except StopIteration as done:
            return done.value, n


def _trained(n_items: int = 600, events: int = 3000) -> HybridRecommender:
    rng = random.Random(0)
    rec = HybridRecommender()
    users: dict[str, UserContext] = {}
    for t in range(events):
        uid = f"u-{rng.randrange(200)}"
        u = users.get(uid, UserContext.empty(uid))
        ev = Interaction(uid, f"i-{rng.randrange(n_items)}", rng.choice(["view", "click", "purchase"]), float(t))
        rec.learn_one(u, ev)
        users[uid] = u.after(ev)
    return rec


@pytest.mark.parametrize("chunk", [1, 7, 100, 10_000])
def test_steps_give_the_same_bytes_as_one_piece(chunk):
    rec = _trained()
    state = rec.state()
    data, steps = _run(dump_steps(rec.name, state, chunk=chunk))
    assert data == dump(rec.name, state)
    assert load(data, rec.name) == load(dump(rec.name, state), rec.name)
    if chunk <= 100:  # the big maps were cut: many steps, each bounded
        assert steps > len(state["popularity"]["counts"]) // max(chunk, 1) // 2


def test_headers_of_every_size_round_trip():
    for n in (0, 1, 15, 16, 65_535, 65_536):
        state = {"m": {f"k{i}": i for i in range(n)}, "a": list(range(n))}
        data, _ = _run(dump_steps("x", state, chunk=5000))
        assert data == dump("x", state)


def test_a_restored_hybrid_equals_the_one_saved_through_steps():
    rec = _trained()
    data, _ = _run(rec.to_bytes_steps())
    assert data == rec.to_bytes()
    back = HybridRecommender.from_bytes(data)
    assert back.state() == rec.state()


def test_a_big_map_past_the_entries_looked_into_still_gives_the_same_bytes():
    # the first entries are small rows, a big one hides further on: one longer step, same bytes
    state = {"rows": {**{f"r{i}": {"a": i} for i in range(20)}, "big": {f"k{i}": i for i in range(500)}}}
    data, steps = _run(dump_steps("x", state, chunk=10))
    assert data == dump("x", state) and steps >= 2
