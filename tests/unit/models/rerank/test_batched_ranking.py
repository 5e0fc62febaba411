"""The batched ranking path: array mirror of the retrievers, wave scoring, rounds in the pipeline."""

from __future__ import annotations

import random
import time

import numpy as np

from models.base import Interaction, UserContext
from models.rerank.online import OnlineRanker
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender
from schemas import Event
from stream_app.core.logic import split_rounds, to_context
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import UserState, apply_event


def stream(n: int, n_users: int, n_items: int, seed: int = 0) -> list[Interaction]:
    rng = random.Random(seed)
    types = ["view"] * 6 + ["click"] * 3 + ["add_to_cart", "purchase"]
    return [
        Interaction(f"u{rng.randrange(n_users)}", f"i{int(n_items * rng.random() ** 2)}", rng.choice(types), float(t))
        for t in range(n)
    ]


def replay(model: OnlineRanker, events: list[Interaction]) -> dict[str, UserContext]:
    ctx: dict[str, UserContext] = {}
    for ev in events:
        before = ctx.get(ev.user_id) or UserContext.empty(ev.user_id)
        model.learn_one(before, ev)
        ctx[ev.user_id] = before.after(ev)
    return ctx


def test_index_mirrors_cooccurrence_rows_through_pruning():
    model = OnlineRanker(cooccurrence=CooccurrenceRecommender(max_neighbors=5, fallback=PopularityRecommender(),
                                                              learn_fallback=True))
    replay(model, stream(3000, n_users=30, n_items=60))
    idx, cooc = model.index, model.cooccurrence
    assert any(len(d) <= 10 for d in cooc.neighbors.values())  # rows were pruned (cap 2 * 5)
    for item, d in cooc.neighbors.items():
        i = idx.ids[item]
        n = int(idx.nb_len[i])
        assert n == len(d), item
        assert [idx.names[j] for j in idx.nb_idx[i, :n].tolist()] == list(d)
        assert idx.nb_w[i, :n].tolist() == list(d.values())
        assert idx.totals[i] == cooc.totals[item]
    pop = model.popularity
    for item, c in pop.counts.items():
        assert idx.pop_counts[idx.ids[item]] == c


def test_wave_ranking_matches_single_rankings_and_votes():
    model = OnlineRanker()
    ctx = replay(model, stream(4000, n_users=120, n_items=300, seed=1))
    users = list(ctx.values())[:90]  # more than one chunk of 64 users
    excludes = [u.purchased | {u.recent_items[-1]} for u in users]
    wave = model.rank_many(users, 10, excludes)
    assert wave == [model.rank(u, 10, ex) for u, ex in zip(users, excludes)]
    for lst, ex in zip(wave, excludes):
        assert len(lst) == 10 and not {i for i, _ in lst} & ex
    # co-occurrence votes agree with the dict model's own aggregation
    u = users[0]
    expect = model.cooccurrence.neighbor_scores(u)
    got = model.index.votes([u], n_top=10_000)
    mine = {model.index.names[i]: v for i, v in zip(got.items.tolist(), got.votes.tolist())}
    assert expect and set(mine) == set(expect)
    assert np.allclose([mine[k] for k in expect], list(expect.values()), rtol=1e-12, atol=0)


def test_popularity_leaderboard_stays_sorted_and_bounded():
    pop = PopularityRecommender(half_life=50.0, top_n=20)
    rng = random.Random(3)
    for t in range(3000):
        pop.learn_one(UserContext.empty("u"), Interaction("u", f"i{int(200 * rng.random() ** 3)}", "click", float(t)))
    board = pop.leaderboard()
    assert len(board) == 20
    best = sorted(pop.log_scores.items(), key=lambda kv: -kv[1])[:20]
    assert {i for i, _ in board} == {i for i, _ in best}
    assert [s for _, s in board] == sorted((s for _, s in board), reverse=True)
    assert pop.top(3) == board[:3]
    restored = PopularityRecommender.from_bytes(pop.to_bytes())
    assert restored.leaderboard() == board


def test_split_rounds_keeps_each_users_order():
    keys = ["a", "b", "a", "c", "a", "b"]
    rounds = split_rounds(keys, key=lambda k: k)
    assert rounds == [[0, 1, 3], [2, 5], [4]]
    assert sorted(i for r in rounds for i in r) == list(range(len(keys)))


def test_pipeline_score_answers_in_order_and_learns_each_event_once():
    p = Pipeline()
    states: dict[str, UserState] = {}
    rng = random.Random(5)
    batch = []
    for off in range(200):
        user = f"u{rng.randrange(12)}"
        ev = Event(f"e{off}", user, f"i{rng.randrange(40)}", rng.choice(["view", "click", "purchase"]), float(off))
        st = states.get(user) or UserState()
        before = to_context(user, st)
        pp, rp = p.observe(before, ev, 0, off)
        new, _ = apply_event(st, ev, off)
        new.shown = p.live.last_shown(user)
        states[user] = new
        batch.append(Pending(ev, 0, off, before, to_context(user, new), time.perf_counter(), pp, rp))
    out = p.score(batch[:120]) + p.score(batch[100:])  # the overlap is a replay
    assert [m["event_id"] for m in out] == [f"e{i}" for i in range(120)] + [f"e{i}" for i in range(100, 200)]
    assert p.ranker.version == 200
    assert p.ranker_offsets == {0: 199}
    for m, pend in zip(out[:120], batch[:120]):
        items = [it["item_id"] for it in m["items"]]
        assert pend.event.item_id not in items
        assert not set(items) & set(pend.after.purchased)
