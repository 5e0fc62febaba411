"""The replay's protocol on planted streams: what is judged, what is excluded, how ties are ordered."""

from __future__ import annotations

import math
import random
from collections.abc import Collection
from itertools import pairwise

import pytest

from models.base import Interaction, Ranked, Recommender, UserContext
from models.evaluation.metrics import paired_bootstrap
from models.evaluation.prequential import evaluate, shuffle_ties
from models.exclusions import exclusions

CATALOGUE = [f"x{i}" for i in range(20)]


class Fixed(Recommender):
    """Always the same order of the catalogue (minus the exclusions): the right answers are known."""

    name = "fixed"

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        return None

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return -float(CATALOGUE.index(item_id)) if item_id in CATALOGUE else -math.inf

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        return [(i, self.predict_one(user, i)) for i in CATALOGUE if i not in exclude][:k]


class Repeat(Recommender):
    """Recommends what the user just touched, first; ``honest=False`` ignores ``exclude`` altogether."""

    name = "repeat"

    def __init__(self, honest: bool = True) -> None:
        self.honest = honest

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        return None

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return 1.0 if item_id in user.recent_items else 0.0

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        out: Ranked = []
        for item in reversed(user.recent_items):
            if (not self.honest or item not in exclude) and item not in dict(out):
                out.append((item, 1.0))
        return out[:k]


def planted(n_users: int = 10) -> list[Interaction]:
    """User ``i`` views ``x_i``, clicks ``x_i`` (the funnel step), then views ``x_{i+1}``."""
    out, t = [], 0.0
    for i in range(n_users):
        for item, typ in ((f"x{i}", "view"), (f"x{i}", "click"), (f"x{i + 1}", "view")):
            out.append(Interaction(f"u{i}", item, typ, t))
            t += 1.0
    return out


def test_planted_answers_give_the_expected_hr_and_ndcg_exactly():
    out = evaluate(planted(), {"fixed": Fixed()}, progress=False)["systems"]["fixed"]
    # 20 judged events (each user's first is not): the click of x_i is never credited (x_i was just
    # touched); x_{i+1} is at position i of the catalogue once x_i is left out.
    assert out["evaluated"] == 20
    assert out["hr@10"] == 10 / 20
    assert out["ndcg@10"] == pytest.approx(sum(1 / math.log2(i + 2) for i in range(10)) / 20)
    assert out["mrr@20"] == pytest.approx(sum(1 / (i + 1) for i in range(10)) / 20)


class Latest(Recommender):
    """The items anyone touched, latest first: its lists change with every event learned."""

    name = "latest"

    def __init__(self) -> None:
        self.items: list[str] = []

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        self.items = [event.item_id, *(i for i in self.items if i != event.item_id)]

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return 0.0

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        return [(i, 0.0) for i in self.items if i not in exclude][:k]


def test_the_list_judged_is_the_one_ranked_right_after_the_previous_event():
    # u1 touches a (its list: nothing else known yet); u2 touches b; u1 touches b. The worker
    # pushed u1's list before b existed, so it holds no b: no credit, though a list ranked just
    # before u1's second event would have had b first.
    events = [Interaction("u1", "a", "view", 0.0), Interaction("u2", "b", "view", 1.0),
              Interaction("u1", "b", "view", 2.0)]
    out = evaluate(events, {"latest": Latest()}, progress=False)["systems"]["latest"]
    assert out["evaluated"] == 1 and out["hr@10"] == 0.0
    # u1 then touches a again: the list pushed after b is [a] (b just touched): a hit
    out = evaluate([*events, Interaction("u1", "a", "view", 3.0)], {"latest": Latest()}, progress=False)
    assert out["systems"]["latest"]["evaluated"] == 2 and out["systems"]["latest"]["hr@10"] == 0.5


def test_a_system_recommending_the_item_just_touched_gets_no_credit():
    events = planted()
    for honest in (True, False):
        out = evaluate(events, {"repeat": Repeat(honest)}, progress=False)["systems"]["repeat"]
        assert out["evaluated"] == 20 and out["hr@10"] == 0.0 and out["mrr@20"] == 0.0, honest


def test_purchased_items_stay_excluded_and_seen_items_only_when_asked():
    # one user walks x0 x1 x2 x3 x4 and buys x0 first: x0 is never in a list again
    events = [Interaction("u", f"x{i}", "purchase" if i == 0 else "view", float(i)) for i in range(5)]
    events.append(Interaction("u", "x0", "view", 9.0))
    plain = evaluate(events, {"fixed": Fixed()}, progress=False)["systems"]["fixed"]
    seen = evaluate(events, {"fixed": Fixed()}, exclude_seen=True, progress=False)["systems"]["fixed"]
    # without ``seen`` (x0 bought, the previous item left out): x1..x4 at positions 0, 0, 1, 2; x0 never
    assert plain["evaluated"] == 5 and plain["hr@10"] == 4 / 5
    assert plain["ndcg@10"] == pytest.approx(sum(1 / math.log2(p + 2) for p in (0, 0, 1, 2)) / 5)
    # with ``seen`` every earlier item is gone too: each new item is first
    assert seen["hr@10"] == 4 / 5 and seen["ndcg@10"] == pytest.approx(4 / 5)


class Spy(Recommender):
    """Records what the replay asks: the user's context and the exclusions of every ranking."""

    name = "spy"

    def __init__(self) -> None:
        self.asked: list[tuple[UserContext, frozenset[str]]] = []

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        return None

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return 0.0

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        self.asked.append((user, frozenset(exclude)))
        return []


def random_stream(n: int = 600, seed: int = 3) -> list[Interaction]:
    rng = random.Random(seed)
    return [Interaction(f"u{rng.randrange(15)}", f"i{rng.randrange(40)}",
                        rng.choice(["view", "view", "click", "add_to_cart", "purchase"]), float(t // 3))
            for t in range(n)]


@pytest.mark.parametrize("batch_size", [1, 16])
def test_the_replay_excludes_exactly_what_exclusions_says_after_each_event(batch_size):
    events = random_stream()
    spy = Spy()
    evaluate(events, {"spy": spy}, batch_size=batch_size, progress=False)
    ctx: dict[str, UserContext] = {}
    expected = []
    for ev in events:  # after every event, the context once the event is applied, and the event
        ctx[ev.user_id] = ctx.get(ev.user_id, UserContext.empty(ev.user_id)).after(ev)
        expected.append((ev.user_id, exclusions(ctx[ev.user_id], ev)))
    assert [(u.user_id, ex) for u, ex in spy.asked] == expected
    assert all(u.recent_items[-1] in ex and u.purchased <= ex for u, ex in spy.asked)


def test_ties_are_shuffled_by_the_seed_and_only_ties():
    events = [Interaction(f"u{i % 7}", f"i{i}", "view", float(i // 10)) for i in range(200)]
    random.Random(0).shuffle(events)
    orders = {s: [e.item_id for e in shuffle_ties(events, s)] for s in range(4)}
    assert orders[0] == [e.item_id for e in shuffle_ties(events, 0)]  # the same seed, the same order
    assert len({tuple(o) for o in orders.values()}) == 4  # each seed its own
    for s in range(4):
        ordered = shuffle_ties(events, s)
        assert sorted(ordered, key=lambda e: e.item_id) == sorted(events, key=lambda e: e.item_id)
        assert all(a.ts <= b.ts for a, b in pairwise(ordered))
    # ids play no part: renaming every item leaves the order of positions as it was
    renamed = [Interaction(e.user_id, f"zz-{999 - int(e.item_id[1:])}", e.type, e.ts) for e in events]
    pos = {e: i for i, e in enumerate(events)}
    pos_renamed = {e: i for i, e in enumerate(renamed)}
    assert [pos[e] for e in shuffle_ties(events, 5)] == [pos_renamed[e] for e in shuffle_ties(renamed, 5)]
    # a tie of two events of the same user lands in both orders over a few seeds
    pair = [Interaction("u", "a", "view", 1.0), Interaction("u", "b", "view", 1.0)]
    assert {shuffle_ties(pair, s)[0].item_id for s in range(20)} == {"a", "b"}


def test_parts_and_per_user_sums_add_up():
    events = random_stream()
    out = evaluate(events, {"fixed": Fixed()}, warmup=100, parts=5, per_user=True, progress=False)
    res = out["systems"]["fixed"]
    parts = res["per_part"]
    assert [(p["from_event"], p["to_event"]) for p in parts] == [(100, 200), (200, 300), (300, 400),
                                                                   (400, 500), (500, 600)]
    assert sum(p["evaluated"] for p in parts) == res["evaluated"]
    per_user = out["per_user"]["fixed"]
    assert sum(n for n, _ in per_user.values()) == res["evaluated"]
    assert sum(s for _, s in per_user.values()) / res["evaluated"] == pytest.approx(res["ndcg@10"])
    hr = sum(p["hr@10"] * p["evaluated"] for p in parts if p["evaluated"]) / res["evaluated"]
    assert hr == pytest.approx(res["hr@10"])


def test_bootstrap_interval_covers_the_difference_and_shrinks_with_more_users():
    rng = random.Random(1)
    small = [[rng.gauss(0.1, 0.3) for _ in range(30)]]
    big = [[rng.gauss(0.1, 0.3) for _ in range(3000)]]
    s_stat, s_lo, s_hi = paired_bootstrap([[1.0] * 30], small)
    b_stat, b_lo, b_hi = paired_bootstrap([[1.0] * 3000], big)
    assert s_lo <= s_stat <= s_hi and b_lo <= b_stat <= b_hi
    assert b_hi - b_lo < (s_hi - s_lo) / 4
    assert b_lo > 0.0  # 3000 users with a real mean difference of 0.1
    with pytest.raises(ValueError):
        paired_bootstrap([[0.0, 0.0]], [[0.0, 0.0]])
