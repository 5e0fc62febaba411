"""A bounded item catalogue: the coldest items are forgotten in steps and the arrays stay a mirror."""

from __future__ import annotations

import random

import numpy as np
import pytest

from models.base import Interaction, UserContext
from models.rerank.capacity import ItemCapacity
from models.rerank.online import OnlineRanker
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender


def churn(n: int, n_users: int, seed: int = 0, hot: int = 40, p_new: float = 0.6) -> list[Interaction]:
    """Events over a few hot items and a stream of new ones (some of them seen again later)."""
    rng = random.Random(seed)
    out: list[Interaction] = []
    for t in range(n):
        r = rng.random()
        if r < p_new:
            item = f"new{t}"
        elif r < p_new + 0.1 and t > 10:
            item = f"new{rng.randrange(t)}"  # an old new item again: perhaps forgotten by now
        else:
            item = f"hot{int(hot * rng.random() ** 2)}"
        out.append(Interaction(f"u{rng.randrange(n_users)}", item, rng.choice(["view", "click", "purchase"]), float(t)))
    return out


def model(max_items: int, max_neighbors: int = 6) -> OnlineRanker:
    pop = PopularityRecommender(half_life=500.0, top_n=30)
    m = OnlineRanker(popularity=pop, cooccurrence=CooccurrenceRecommender(max_neighbors=max_neighbors, fallback=pop,
                                                                          learn_fallback=False))
    m.set_max_items(max_items)
    return m


def settle(m: OnlineRanker) -> None:
    for _ in range(10_000):
        if not m.upkeep():
            return
    raise AssertionError("upkeep never finished")


def assert_mirror(m: OnlineRanker) -> None:
    """Every array row equals its retriever's dict; nothing names an item not held."""
    idx, cooc, pop = m.index, m.cooccurrence, m.popularity
    held = set(idx.ids)
    assert set(pop.counts) <= held and set(pop.log_scores) <= held
    assert set(cooc.neighbors) <= held and set(cooc.totals) <= held
    for item, i in idx.ids.items():
        assert idx.names[i] == item and idx.alive[i]
    assert int(idx.alive.sum()) == len(idx.ids)
    for item, d in cooc.neighbors.items():
        i = idx.ids[item]
        n = int(idx.nb_len[i])
        assert set(d) <= held, item
        assert n == len(d), item
        assert {idx.names[j]: w for j, w in zip(idx.nb_idx[i, :n].tolist(), idx.nb_w[i, :n].tolist())} == d
        assert idx.totals[i] == cooc.totals[item]
    for item, c in pop.counts.items():
        assert idx.pop_counts[idx.ids[item]] == c


def test_the_items_held_stay_bounded_and_the_arrays_stay_a_mirror():
    m = model(300)
    cap0 = m.index.capacity
    ctx: dict[str, UserContext] = {}
    for k, ev in enumerate(churn(12_000, n_users=80)):
        before = ctx.get(ev.user_id) or UserContext.empty(ev.user_id)
        m.learn_one(before, ev)
        ctx[ev.user_id] = before.after(ev)
        if k % 16 == 0:  # a step per "batch": forgotten items come back while rounds are under way
            m.upkeep()
        assert len(m.index.ids) <= 300 + m.index.headroom
    settle(m)
    assert m.capacity is not None and m.capacity.rounds >= 10 and m.capacity.forgotten > 5000
    assert len(m.index.ids) <= 300
    assert m.index.capacity == cap0  # sized once, never grown by copying
    assert_mirror(m)
    # the hot items are all still held, with their neighbors
    hot = m.popularity.top_items(10)
    assert all(item.startswith("hot") for item in hot)
    users = list(ctx.values())[:50]
    lists = m.rank_many(users, 10)
    assert all(len(lst) == 10 and {i for i, _ in lst} <= set(m.index.ids) for lst in lists)


def test_votes_never_name_an_item_being_forgotten():
    m = model(200)
    ctx: dict[str, UserContext] = {}
    events = churn(3000, n_users=20, p_new=0.5)
    seen_sweep = 0
    for ev in events:
        before = ctx.get(ev.user_id) or UserContext.empty(ev.user_id)
        m.learn_one(before, ev)
        ctx[ev.user_id] = before.after(ev)
        m.upkeep()
        if m.index.sweeping:
            seen_sweep += 1
            users = list(ctx.values())
            v = m.index.votes(users[:64], n_top=1000)
            assert m.index.alive[v.items].all()
            assert m.index.alive[v.all_keys % m.index.capacity].all()
    assert seen_sweep > 0


def test_a_list_whose_ids_were_given_to_other_items_is_not_learned_from():
    m = model(100)
    u = UserContext("u", ("hot1", "hot2"))
    for t, item in enumerate(["hot1", "hot2", "hot3", "hot1", "hot2"] * 5):
        m.learn_one(UserContext.empty(f"w{t}"), Interaction(f"w{t}", item, "click", float(t)))
    m.rank(u, 10)
    items, _, gen = m.memory["u"]
    assert m.index.still_means(items, gen)
    t = 100
    while m.index.generation == gen:  # new items until a round has freed ids
        m.learn_one(UserContext.empty("x"), Interaction("x", f"n{t}", "view", float(t)))
        m.upkeep()
        t += 1
    freed = np.flatnonzero(m.index.freed_at > gen).tolist()
    assert not m.index.still_means(freed[:1], gen)
    assert m.index.still_means(freed[:1], m.index.generation)
    pairs = m.n_pairs
    if not m.index.still_means(items, gen):  # the remembered list is dropped, not learned from
        m.learn_one(u, Interaction("u", "hot3", "click", float(t)))
        assert m.n_pairs == pairs


def test_a_checkpoint_taken_during_a_round_restores_a_consistent_model():
    m = model(150)
    ctx: dict[str, UserContext] = {}
    for ev in churn(2500, n_users=30):
        before = ctx.get(ev.user_id) or UserContext.empty(ev.user_id)
        m.learn_one(before, ev)
        ctx[ev.user_id] = before.after(ev)
        m.upkeep()
        if m.index.sweeping:
            break
    assert m.index.sweeping
    back = OnlineRanker.from_bytes(m.to_bytes())
    back.set_max_items(150)
    settle(back)
    assert len(back.index.ids) <= 150
    assert_mirror(back)


def test_every_item_protected_means_no_round_and_no_spin():
    pop = PopularityRecommender(top_n=500)
    m = OnlineRanker(popularity=pop)
    m.set_max_items(50)
    for t in range(120):
        m.learn_one(UserContext.empty("u"), Interaction("u", f"i{t}", "view", float(t)))
    assert m.upkeep() is False  # all 120 are on the leaderboard: kept, and upkeep says it is done
    assert len(m.index.ids) == 120


@pytest.mark.parametrize("bad", [{"max_items": 0}, {"max_items": 10, "share": 1.0}])
def test_bad_capacity_settings_are_refused(bad):
    with pytest.raises(ValueError):
        ItemCapacity(**bad)
