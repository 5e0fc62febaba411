"""The synthetic stream: deterministic, valid, skewed, with a funnel, sequences and new items."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from schemas import event_from_dict
from stream_app.data.synthetic import generate

N_ITEMS = 2000


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return list(generate(60_000, n_users=500, n_items=N_ITEMS, seed=11, new_item_rate=0.005))


def test_deterministic_and_seed_dependent(events):
    assert list(generate(60_000, n_users=500, n_items=N_ITEMS, seed=11, new_item_rate=0.005)) == events
    other = list(generate(1000, n_users=500, n_items=N_ITEMS, seed=12, new_item_rate=0.005))
    assert [e["item_id"] for e in other] != [e["item_id"] for e in events[:1000]]


def test_every_event_is_valid_and_ids_unique(events):
    for e in events:
        ev = event_from_dict(e)
        assert ev.price is not None and ev.price >= 0
        assert ev.session_id
    assert len({e["event_id"] for e in events}) == len(events)


def test_time_is_monotone_and_starts_at_start_ts():
    evs = list(generate(5000, n_users=50, n_items=300, seed=1, start_ts=1000.0, events_per_second=10.0))
    ts = [e["ts"] for e in evs]
    assert ts == sorted(ts)
    assert 1000.0 <= ts[0] < ts[-1]
    assert ts[-1] - ts[0] == pytest.approx(500.0, rel=0.1)  # 5000 events at 10 events/s


def test_popularity_is_skewed(events):
    counts = Counter(e["item_id"] for e in events)
    top = counts.most_common(N_ITEMS // 100)
    share = sum(c for _, c in top) / len(events)
    assert share > 0.08, f"top 1% of items hold only {share:.1%} of events"


def test_funnel_decreases(events):
    c = Counter(e["type"] for e in events)
    assert c["view"] > c["click"] > c["add_to_cart"] > c["purchase"] > 0
    # A funnel step follows the previous step on the same item, in the same session.
    last: dict[str, tuple[str, str]] = {}
    before = {"click": "view", "add_to_cart": "click", "purchase": "add_to_cart"}
    for e in events:
        if e["type"] in before:
            assert last[e["session_id"]] == (e["item_id"], before[e["type"]])
        last[e["session_id"]] = (e["item_id"], e["type"])


def test_sessions_belong_to_one_user(events):
    owner: dict[str, str] = {}
    for e in events:
        assert owner.setdefault(e["session_id"], e["user_id"]) == e["user_id"]
    assert len(owner) > 100


def test_new_items_appear_later(events):
    first_seen: dict[int, int] = {}
    for pos, e in enumerate(events):
        first_seen.setdefault(int(e["item_id"].removeprefix("i-")), pos)
    new = [pos for item, pos in first_seen.items() if item >= N_ITEMS]
    old = [pos for item, pos in first_seen.items() if item < N_ITEMS]
    assert len(new) > 20
    assert sum(new) / len(new) > 2 * sum(old) / len(old)
    assert sum(1 for e in events if int(e["item_id"][2:]) >= N_ITEMS) > len(new)  # they get traffic


def test_no_new_items_when_rate_is_zero():
    evs = generate(5000, n_users=50, n_items=300, seed=2, new_item_rate=0.0)
    assert all(int(e["item_id"][2:]) < 300 for e in evs)


def test_next_item_is_predictable_from_the_previous_one(events):
    """Sequence signal: the most frequent successor of an item beats global popularity."""
    pairs = []
    last: dict[str, str] = {}
    for e in events:
        if e["type"] == "view":
            if e["session_id"] in last:
                pairs.append((last[e["session_id"]], e["item_id"]))
            last[e["session_id"]] = e["item_id"]
    cut = int(len(pairs) * 0.8)
    succ: dict[str, Counter] = defaultdict(Counter)
    pop: Counter = Counter()
    for a, b in pairs[:cut]:
        succ[a][b] += 1
        pop[b] += 1
    top = {i for i, _ in pop.most_common(10)}
    test = pairs[cut:]
    hit_pop = sum(b in top for _, b in test) / len(test)
    hit_seq = sum(b in {i for i, _ in succ[a].most_common(10)} for a, b in test) / len(test)
    assert hit_seq > 3 * hit_pop and hit_seq > 0.2


def test_users_stay_near_their_taste(events):
    """A user's views concentrate on their tastes: far more than the same views given to random users."""
    views = [(e["user_id"], e["item_id"]) for e in events if e["type"] == "view"]

    def concentration(pairs: list[tuple[str, str]]) -> float:
        per_user: dict[str, Counter] = defaultdict(Counter)
        for user, item in pairs:
            per_user[user][item] += 1
        heavy = [c for c in per_user.values() if sum(c.values()) >= 100]
        assert len(heavy) > 20
        return sum(sum(n for _, n in c.most_common(20)) / sum(c.values()) for c in heavy) / len(heavy)

    users = [u for u, _ in views]
    random.Random(0).shuffle(users)
    shuffled = list(zip(users, [i for _, i in views]))
    assert concentration(views) > 1.4 * concentration(shuffled)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_users"):
        list(generate(1, n_users=0))
    with pytest.raises(ValueError, match="new_item_rate"):
        generate(1, new_item_rate=2.0)
    with pytest.raises(ValueError, match="n_events"):
        generate(-1)
