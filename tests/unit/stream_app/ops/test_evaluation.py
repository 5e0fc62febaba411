"""``streamrec eval``: the worker's exclusions, ties reshuffled per seed, the contract's JSON plus spread."""

from __future__ import annotations

import random
import statistics
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import models.evaluation.prequential as prequential
from models import exclusions as shared
from models.base import Interaction, Ranked, Recommender, UserContext
from models.retrieval.popularity import PopularityRecommender
from schemas import Event
from stream_app.cli.main import build_app
from stream_app.core import logic
from stream_app.core.state import UserState, apply_event
from stream_app.data.formats import FORMATS, get_format
from stream_app.ops import evaluation
from stream_app.ops.evaluation import SYSTEMS, markdown_table, run_eval

CONTRACT = {"hr@10", "ndcg@10", "mrr@20", "coverage"}
TYPES = ["view", "view", "click", "add_to_cart", "purchase"]


def test_the_scorer_and_the_replay_use_one_exclusions_function():
    assert logic.exclusions is shared.exclusions
    assert prequential.exclusions is shared.exclusions


def test_the_worker_still_excludes_purchases_and_the_item_just_touched_on_random_contexts():
    rng = random.Random(7)
    for _ in range(300):
        purchased = frozenset(f"i{rng.randrange(30)}" for _ in range(rng.randrange(6)))
        ctx = UserContext("u", tuple(f"i{rng.randrange(30)}" for _ in range(rng.randrange(5))), purchased)
        ev = Event("e", "u", f"i{rng.randrange(30)}", rng.choice(TYPES), 1.0)
        assert logic.exclusions(ctx, ev) == purchased | {ev.item_id}


class Spy(Recommender):
    name = "spy"

    def __init__(self) -> None:
        self.asked: list[tuple[str, frozenset[str]]] = []

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        return None

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return 0.0

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        self.asked.append((user.user_id, frozenset(exclude)))
        return []


def test_the_replay_excludes_what_the_scorer_excluded_for_the_list_it_pushed():
    """Worker side: the stored state after each event and ``logic.exclusions``; replay side: what a
    model is asked to leave out for the list pushed after that event. They must be equal."""
    rng = random.Random(11)
    events = [Event(f"e{n}", f"u{rng.randrange(12)}", f"i{rng.randrange(25)}", rng.choice(TYPES), float(n))
              for n in range(800)]
    states: dict[str, UserState] = {}
    expected = []
    for off, ev in enumerate(events):
        state, _ = apply_event(states.get(ev.user_id, UserState()), ev, off)
        states[ev.user_id] = state
        expected.append((ev.user_id, logic.exclusions(logic.to_context(ev.user_id, state), ev)))
    spy = Spy()
    prequential.evaluate([logic.to_interaction(e) for e in events], {"spy": spy}, progress=False)
    assert spy.asked == expected


def test_ties_are_reshuffled_per_seed_and_the_same_for_the_same_seed(monkeypatch):
    orders: list[tuple[str, ...]] = []

    def fake_evaluate(events: list[Interaction], systems: dict[str, Recommender], **kw: Any) -> dict[str, Any]:
        orders.append(tuple(e.item_id for e in events))
        metrics = {"hr@10": 0.0, "ndcg@10": 0.0, "mrr@20": 0.0, "coverage": 0.0, "novelty": 0.0,
                   "diversity": 0.0, "evaluated": 1, "rank_ms": 0.0, "per_part": []}
        return {"events": len(events), "seconds": 0.0, "systems": {name: dict(metrics) for name in systems},
                "per_user": {name: {"u": [1.0, 0.0]} for name in systems}}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    events = [Interaction(f"u{i % 9}", f"i{i}", "view", float(i // 20)) for i in range(200)]  # ties of 20
    run_eval(events, "ties", seeds=[0, 1, 0], progress=False)
    assert orders[0] == orders[2] != orders[1]
    for order, seed in zip(orders, (0, 1, 0)):
        assert order == tuple(e.item_id for e in prequential.shuffle_ties(events, seed))


def test_every_format_says_whether_seen_items_are_excluded_and_the_cli_passes_it(monkeypatch, tmp_path: Path):
    assert {f: get_format(f).exclude_seen for f in FORMATS} == {
        "jsonl": False, "movielens": True, "retailrocket": False, "otto": False, "taobao": False}
    calls: list[dict[str, Any]] = []

    def fake_run_eval(events: list[Interaction], name: str, *args: Any, **kw: Any) -> dict[str, Any]:
        calls.append(kw)
        return {"dataset": name, "events": len(events), "evaluated_from_event": 0, "retrain_every": 1,
                "seconds": 0.0, "systems": {}}

    monkeypatch.setattr(evaluation, "run_eval", fake_run_eval)
    monkeypatch.setattr(evaluation, "markdown_table", lambda result: "table\n")
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n" + "".join(f"1,{i},4.0,{i}\n" for i in range(5)))
    runner = CliRunner()
    app = build_app()
    base = ["eval", "--dataset", str(ratings), "--format", "movielens", "--out", str(tmp_path / "o.json")]
    for extra, seen in (([], True), (["--no-exclude-seen"], False), (["--seeds", "5"], True)):
        r = runner.invoke(app, base + extra)
        assert r.exit_code == 0, r.output
        assert calls[-1]["exclude_seen"] is seen
    assert calls[-1]["seeds"] == 5 and calls[0]["seeds"] == 3
    r = runner.invoke(app, ["eval", "--synthetic", "200", "--out", str(tmp_path / "s.json")])
    assert r.exit_code == 0, r.output
    assert calls[-1]["exclude_seen"] is False


class StandIn:
    """What ``models.deep.train.train`` returns, with a popularity model as the "deep" one (fast)."""

    def __init__(self, history: list[Interaction]) -> None:
        self.epoch_seconds, self.metrics, self.device = [0.0], {}, "cpu"
        self.model = PopularityRecommender(half_life=None)
        for ev in history:
            self.model.learn_one(UserContext.empty(ev.user_id), ev)

    def recommender(self, version: str) -> Recommender:
        return self.model


@pytest.fixture(scope="module")
def small_result() -> dict[str, Any]:
    import models.deep.train
    from stream_app.data.synthetic import generate

    events = [Interaction(e["user_id"], e["item_id"], e["type"], round(e["ts"], 0))  # whole seconds: many ties
              for e in generate(700, n_users=40, n_items=120, seed=5)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models.deep.train, "train", lambda history, cfg, **kw: StandIn(history))
        return run_eval(events, "small", epochs=1, seeds=2, progress=False)


def test_the_json_keeps_the_contract_and_adds_the_spread(small_result: dict[str, Any]):
    r = small_result
    assert {"dataset", "events", "systems", "seeds", "protocol", "hybrid_vs_best"} <= set(r)
    assert r["dataset"] == "small" and r["events"] == 700 and r["seeds"] == [0, 1]
    assert set(SYSTEMS) <= set(r["systems"])
    for name, m in r["systems"].items():
        assert set(m) >= CONTRACT and set(m["sd"]) >= CONTRACT, name
        assert len(m["per_fifth"]) == 5
        for metric in CONTRACT:
            per_seed = [s["systems"][name][metric] for s in r["per_seed"]]
            assert m[metric] == pytest.approx(statistics.fmean(per_seed))
            assert m["sd"][metric] == pytest.approx(statistics.stdev(per_seed))
    protocol = r["protocol"]
    assert protocol["exclude_seen"] is False and "random order" in protocol["ties"] and protocol["seeds"] == [0, 1]
    hv = r["hybrid_vs_best"]
    others = {n: m["ndcg@10"] for n, m in r["systems"].items() if n != "hybrid"}
    assert hv["other"] == max(others, key=others.__getitem__)
    assert hv["diff"] == pytest.approx(r["systems"]["hybrid"]["ndcg@10"] - others[hv["other"]])
    lo, hi = hv["ci95"]
    assert lo <= hv["diff"] <= hi
    assert "±" in markdown_table(r)


@pytest.fixture(scope="module")
def oracle_result() -> dict[str, Any]:
    import models.deep.train
    from models.evaluation.oracle import Oracle
    from stream_app.cli.evaluate import synthetic_events

    events, truth = synthetic_events(600, {"n_users": 40, "n_items": 150, "seed": 5})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models.deep.train, "train", lambda history, cfg, **kw: StandIn(history))
        return run_eval(events, "small", epochs=1, seeds=2, progress=False, oracle=lambda: Oracle(truth.law()))


def test_the_oracle_is_judged_with_the_others_and_every_system_gets_its_share(oracle_result: dict[str, Any]):
    systems = oracle_result["systems"]
    assert set(systems) == {*SYSTEMS, "oracle"} and "oracle" in oracle_result["protocol"]
    ceiling = systems["oracle"]["ndcg@10"]
    per_seed_ceiling = [s["systems"]["oracle"]["ndcg@10"] for s in oracle_result["per_seed"]]
    for name, m in systems.items():
        assert m["evaluated"] == systems["oracle"]["evaluated"], name
        assert m["share_of_oracle"] == pytest.approx(m["ndcg@10"] / ceiling)
        shares = [s["systems"][name]["ndcg@10"] / c for s, c in zip(oracle_result["per_seed"], per_seed_ceiling)]
        assert m["share_of_oracle_sd"] == pytest.approx(statistics.stdev(shares))
        if name != "oracle":
            assert m["ndcg@10"] < ceiling, name
    assert systems["oracle"]["share_of_oracle"] == 1.0
    assert oracle_result["hybrid_vs_best"]["other"] != "oracle"  # the ceiling is no competitor
    table = markdown_table(oracle_result)
    assert "share of oracle" in table and "| oracle |" in table


def test_the_synthetic_knobs_reach_the_generator_and_bad_ones_are_one_line_errors(monkeypatch, tmp_path: Path):
    calls: list[dict[str, Any]] = []

    def fake_run_eval(events: list[Interaction], name: str, *args: Any, **kw: Any) -> dict[str, Any]:
        calls.append({"events": events, **kw})
        return {"dataset": name, "events": len(events), "evaluated_from_event": 0, "retrain_every": 1,
                "seconds": 0.0, "systems": {}}

    monkeypatch.setattr(evaluation, "run_eval", fake_run_eval)
    monkeypatch.setattr(evaluation, "markdown_table", lambda result: "table\n")
    app, runner = build_app(), CliRunner()
    out = tmp_path / "s.json"
    r = runner.invoke(app, ["eval", "--synthetic", "400", "--out", str(out), "--items", "60", "--users", "30",
                            "--p-related", "1.0", "--p-taste", "0.0", "--no-funnel", "--new-item-rate", "0"])
    assert r.exit_code == 0, r.output
    evs = calls[-1]["events"]
    assert {e.type for e in evs} == {"view"} and len({e.user_id for e in evs}) <= 30
    assert all(int(e.item_id[2:]) < 60 for e in evs)
    assert calls[-1]["oracle"] is not None
    import orjson

    knobs = orjson.loads(out.read_bytes())["synthetic"]
    assert knobs["p_related"] == 1.0 and knobs["funnel"] is None and knobs["events"] == 400
    r = runner.invoke(app, ["eval", "--synthetic", "400", "--out", str(out), "--no-oracle"])
    assert r.exit_code == 0 and calls[-1]["oracle"] is None
    r = runner.invoke(app, ["eval", "--synthetic", "400", "--out", str(out), "--p-related", "0.8", "--p-taste", "0.5"])
    assert r.exit_code == 2 and "p_related + p_taste" in r.output and "Traceback" not in r.output


def test_warm_started_retrainings_follow_the_first_one_on_the_given_schedule():
    from stream_app.data.synthetic import generate

    events = [Interaction(e["user_id"], e["item_id"], e["type"], e["ts"])
              for e in generate(900, n_users=40, n_items=120, seed=2)]
    r = run_eval(events, "warm", retrain_every=150, epochs=1, seeds=1, progress=False, first_train=300,
                 warm_epochs=1)
    trainings = r["trainings"]
    # after event 300, then every 150 events, none after the last one: 300, 450, 600, 750
    assert [t["events"] for t in trainings] == [300, 450, 600, 750]
    assert [t["warm"] for t in trainings] == [False, True, True, True]
    assert all(t["holdout"]["warm_start"] == 1.0 for t in trainings[1:])
    assert r["evaluated_from_event"] == 300 and r["retrain_every"] == 150 and r["warm_epochs"] == 1
    assert "warm-started" in r["protocol"]["retraining"] and "warm-started" in markdown_table(r)
    assert r["systems"]["deep"]["evaluated"] == r["systems"]["cooccurrence"]["evaluated"] > 0
