"""Experiments: the file's checks, the split of users, team-draft interleaving, and variants
through the real pipeline (what each variant's users get, and the figures kept per variant)."""

from __future__ import annotations

import random
import time

import pytest

from models.filters.rules import Rules
from schemas import Event
from schemas.items import Item
from stream_app.core.experiment_report import interleaving, report, sign_test, wilson
from stream_app.core.experiments import Experiment, ExperimentError, team_draft
from stream_app.core.on_request import OnRequest
from stream_app.core.pipeline import Pending, Pipeline
from stream_app.core.state import decode_state
from stream_app.core.store import DictTable

TWO = {"name": "exp", "variants": [{"name": "control"}, {"name": "trending", "system": "popularity"}]}


@pytest.mark.parametrize(("data", "says"), [
    ({"name": "x", "variants": [{"name": "a"}]}, "at least two variants"),
    ({"name": "", "variants": TWO["variants"]}, "name must be a non-empty string"),
    ({"name": "x", "variants": [{"name": "a"}, {"name": "a"}]}, "must be unique"),
    ({"name": "x", "variants": [{"name": "a", "system": "magic"}, {"name": "b"}]}, "system must be one of"),
    ({"name": "x", "variants": [{"name": "a", "share": -1}, {"name": "b"}]}, "share must be a number >= 0"),
    ({"name": "x", "variants": [{"name": "a", "share": 0}, {"name": "b", "share": 0}]}, "a share above 0"),
    ({"name": "x", "variants": [{"name": "a"}, {"name": "b", "interleave": ["a", "c"]}]}, "'c', which is not"),
    ({"name": "x", "variants": [{"name": "a"}, {"name": "b", "interleave": ["a", "a"]}]}, "two different variants"),
    ({"name": "x", "variants": [{"name": "a"}, {"name": "c"}, {"name": "b", "interleave": ["a", "c"], "deep": False}]},
     "leave out system, deep and rules"),
    ({"name": "x", "variants": [{"name": "a", "rules": {"max_per_categry": 1}}, {"name": "b"}]}, "max_per_categry"),
    ({"name": "x", "variants": [{"name": "a", "deep": "no"}, {"name": "b"}]}, "deep must be true or false"),
])
def test_a_bad_experiment_says_what_is_wrong(data, says):
    with pytest.raises(ExperimentError, match=says):
        Experiment.from_dict(data)


def test_an_unreadable_experiments_file_names_the_file(tmp_path):
    with pytest.raises(ExperimentError, match="does not exist"):
        Experiment.from_file(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ExperimentError, match=r"bad\.json is not readable JSON"):
        Experiment.from_file(bad)


def test_users_are_split_stably_in_proportion_to_the_shares_and_a_new_name_reshuffles():
    exp = Experiment.from_dict({"name": "e1", "variants": [{"name": "a", "share": 3}, {"name": "b", "share": 1}]})
    users = [f"user-{i}" for i in range(20_000)]
    first = [exp.assign(u).name for u in users]
    assert first == [exp.assign(u).name for u in users]
    share_a = first.count("a") / len(users)
    assert 0.74 < share_a < 0.76, share_a  # 3 sd of a binomial share at n = 20k is 0.009
    other = Experiment.from_dict({"name": "e2", "variants": [{"name": "a", "share": 3}, {"name": "b", "share": 1}]})
    moved = sum(x != other.assign(u).name for x, u in zip(first, users)) / len(users)
    assert 0.3 < moved < 0.45, moved  # independent splits: 2 * 0.75 * 0.25 = 0.375 change side


def test_team_draft_keeps_each_teams_order_balances_the_teams_and_tosses_a_fair_coin():
    rng = random.Random(3)
    firsts = 0
    for _ in range(2000):
        a = [(f"i{j}", 1.0, "a") for j in rng.sample(range(30), 15)]
        b = [(f"i{j}", 1.0, "b") for j in rng.sample(range(30), 15)]
        merged, teams = team_draft(a, b, 10, rng)
        ids = [i for i, _, _ in merged]
        assert len(ids) == len(set(ids)) == 10 and set(teams) == set(ids)
        counts = [list(teams.values()).count(t) for t in ("a", "b")]
        assert abs(counts[0] - counts[1]) <= 1
        for team, source in (("a", a), ("b", b)):  # each team's picks come in its own ranking's order
            picked = [i for i in ids if teams[i] == team]
            order = [i for i, _, _ in source]
            assert picked == sorted(picked, key=order.index)
        firsts += teams[ids[0]] == "a"
    assert 900 < firsts < 1100  # the first pick is a coin toss
    merged, teams = team_draft([("x", 1.0, "a")], [("y", 1.0, "b"), ("z", 1.0, "b")], 5, rng)
    assert sorted(teams.items()) == [("x", "a"), ("y", "b"), ("z", "b")]  # a short list lets the other go on


def test_intervals_and_the_sign_test():
    assert wilson(0, 0)["value"] is None
    w = wilson(50, 100)
    assert w["low"] < 0.5 < w["high"] and w["high"] - w["low"] == pytest.approx(0.192, abs=0.005)
    assert sign_test(10, 10) == 1.0 and sign_test(0, 10) == pytest.approx(2 / 1024)
    assert sign_test(60, 40) == pytest.approx(0.0574, abs=0.005)  # normal approximation
    assert interleaving(50, 50, 10)["winner"] is None and interleaving(20, 80, 0)["winner"] == "b"
    r = report({"judged": 4, "hits": 2, "ndcg": 2.0, "ndcg_sq": 2.0})
    assert r["ndcg@10"]["value"] == 0.5 and r["ndcg@10"]["low"] < 0.5 < r["ndcg@10"]["high"]


class Stream:
    """A real pipeline driven as the scorer drives it, with an experiment."""

    def __init__(self, experiment: dict) -> None:
        self.pipeline = Pipeline(top_k=5)
        self.pipeline.set_experiment(Experiment.from_dict(experiment))
        self.table = DictTable({})
        self.offset = 0

    def send(self, events: list[tuple[str, str]]) -> list[dict]:
        batch = []
        for user, item in events:
            ev = Event(f"e{self.offset}", user, item, "click", 1_700_000_000.0 + self.offset)
            batch.append(Pending(ev, 0, self.offset, received=time.perf_counter()))
            self.offset += 1
        states, _ = self.pipeline.prepare(batch, lambda part, u: self.table.get(part, u.encode()))
        self.table.write(0, [(u.encode(), raw) for (_, u), raw in states.items()])
        return self.pipeline.score(batch)


def personal_stream(n_users: int, rounds: int, seed: int) -> list[list[tuple[str, str]]]:
    """Users who cycle through a few items of their own, beside a globally popular head: what
    follows a user's item is predictable (co-occurrence), what is popular is not what they take."""
    rng = random.Random(seed)
    own = {f"u{k}": [f"p{k}-{j}" for j in range(4)] for k in range(n_users)}
    batches = []
    for r in range(rounds):
        batch = []
        for user, items in own.items():
            batch.append((user, items[r % 4] if rng.random() < 0.9 else f"head-{rng.randrange(5)}"))
        rng.shuffle(batch)
        batches.append(batch)
    return batches


def test_every_message_carries_its_variant_and_each_variant_makes_its_own_lists():
    s = Stream({"name": "exp", "variants": [
        {"name": "control"}, {"name": "trending", "system": "popularity"},
        {"name": "no-b", "rules": {"exclude_categories": ["cb"]}}]})
    s.pipeline.filter.catalogue.update(Item("p0-1", category="cb"))
    for batch in personal_stream(60, 6, seed=1):
        msgs = s.send(batch)
    lists = s.pipeline.lists
    seen = set()
    for m in msgs:
        v = lists.variant_of(m["user_id"])
        seen.add(v)
        assert m["variant"] == v
        items = [i["item_id"] for i in m["items"]]
        if v == "trending":  # the popularity model's own list, untouched by the reranker
            user = s.pipeline.lists.experiment.variant("trending")
            assert user.system == "popularity" and all(i["source"] == "popularity" for i in m["items"])
        if v == "no-b":
            assert "p0-1" not in items
    assert seen == {"control", "trending", "no-b"}
    # the variant's rules hold on request too, and the answer names the variant
    no_b = next(f"u{k}" for k in range(60) if lists.variant_of(f"u{k}") == "no-b")
    state = decode_state(s.table.get(0, no_b.encode()))
    ans = OnRequest(s.pipeline).for_user(no_b, state, 10)
    assert ans["variant"] == "no-b" and "p0-1" not in [i["item_id"] for i in ans["items"]]


def test_a_planted_better_variant_wins_on_the_live_figures_and_in_the_interleaving():
    s = Stream({"name": "planted", "variants": [
        {"name": "hybrid"}, {"name": "trending", "system": "popularity"},
        {"name": "both", "interleave": ["trending", "hybrid"]}]})
    for batch in personal_stream(300, 12, seed=2):
        s.send(batch)
    rows = {name: report(sums) for name, sums in s.pipeline.live.variants().items()}
    assert set(rows) == {"hybrid", "trending", "both"}
    hybrid, trending = rows["hybrid"]["hr@10"], rows["trending"]["hr@10"]
    assert rows["hybrid"]["judged"] > 500 and rows["trending"]["judged"] > 500
    assert hybrid["low"] > trending["high"], (hybrid, trending)  # intervals apart
    inter = rows["both"]["interleaving"]
    assert inter["b"] > inter["a"] and inter["winner"] == "b" and inter["p_value"] < 0.01, inter
    total = s.pipeline.live.snapshot()["judged"]
    assert total == sum(r["judged"] for r in rows.values())  # the overall figures count every variant


def test_without_an_experiment_messages_have_no_variant_and_the_tallies_stay_empty():
    p = Pipeline(top_k=3)
    ev = Event("e0", "u", "a", "click", 1.0)
    batch = [Pending(ev, 0, 0, received=time.perf_counter())]
    p.prepare(batch, lambda part, u: None)
    (msg,) = p.score(batch)
    assert "variant" not in msg and p.live.variants() == {}
    assert Rules().active is False  # the default filter stays inactive


def test_a_variant_without_the_deep_model_gets_no_deep_candidates():
    from models.hybrid import HybridRecommender

    deep = list(HybridRecommender.check_params())[-1]["deep"]  # a small untrained model over i0..i39
    s = Stream({"name": "deep", "variants": [{"name": "control"}, {"name": "no-deep", "deep": False}]})
    s.pipeline.install_deep(deep, s.pipeline.prepare_deep(deep))
    rng = random.Random(4)
    sources: dict[str, set[str]] = {"control": set(), "no-deep": set()}
    for _ in range(8):
        for m in s.send([(f"u{k}", f"i{rng.randrange(40)}") for k in range(40)]):
            sources[m["variant"]] |= {i["source"] for i in m["items"]}
    assert "deep" in sources["control"] and "deep" not in sources["no-deep"], sources
