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
