"""Prequential evaluation: the harness itself, and the baselines on real MovieLens data."""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path

import pytest

from models.base import Interaction, UserContext
from models.evaluation.metrics import hit_at, ndcg_at, rr_at
from models.evaluation.prequential import evaluate
from models.hybrid import HybridRecommender
from models.rerank.online import OnlineRanker
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender
from stream_app.data.eventlog import read_file
from stream_app.data.sources import SourceError
from tests.paths import ROOT, shared_data_dir  # noqa: F401

DATA = Path(os.environ.get("STREAMREC_SHARED_DATA", shared_data_dir()))
RATINGS = DATA / "movielens-latest-small" / "ratings.csv"
needs_movielens = pytest.mark.skipif(not RATINGS.exists(), reason=f"MovieLens ratings not found at {RATINGS}")

KEYS = {"hr@10", "ndcg@10", "mrr@20", "coverage", "novelty", "diversity"}


def chain_events(n_users: int = 40) -> list[Interaction]:
    """Every user walks a -> b -> c -> d; a popular distractor z is clicked in between by others."""
    out, t = [], 0.0
    for u in range(n_users):
        for item in "abcd":
            out.append(Interaction(f"u{u}", item, "click", t))
            out.append(Interaction(f"z{u}", "z", "click", t + 0.5))
            t += 1.0
    return out


def test_point_metrics():
    items = ["a", "b", "c"]
    assert hit_at(items, "c") == 1.0 and hit_at(items, "c", k=2) == 0.0
    assert ndcg_at(items, "a") == 1.0 and ndcg_at(items, "b") == pytest.approx(1 / 1.584962500721156)
    assert rr_at(items, "c") == pytest.approx(1 / 3) and rr_at(items, "q") == 0.0


def test_side_by_side_replay_and_options():
    events = chain_events()
    systems = {"popularity": PopularityRecommender(), "cooccurrence": CooccurrenceRecommender()}
    out = evaluate(events, systems, progress=False)
    assert out["events"] == len(events)
    first_seen = {ev.user_id: i for i, ev in reversed(list(enumerate(events)))}
    for name, metrics in out["systems"].items():
        assert set(metrics) >= KEYS, name
        assert 0.0 <= metrics["coverage"] <= 1.0 and 0.0 <= metrics["diversity"] <= 1.0
        assert metrics["evaluated"] == len(events) - len(first_seen)  # a user's first event has no list before it
    assert out["systems"]["cooccurrence"]["ndcg@10"] > out["systems"]["popularity"]["ndcg@10"] + 0.1
    sparse = evaluate(events, {"popularity": PopularityRecommender()}, every=3, warmup=0.5, progress=False)
    # judged: events whose user's previous event was ranked (every 3rd) after the warmup (half)
    previous: dict[str, int] = {}
    expected = 0
    for i, ev in enumerate(events):
        prev = previous.get(ev.user_id)
        expected += prev is not None and prev % 3 == 0 and prev >= len(events) // 2
        previous[ev.user_id] = i
    assert 0 < sparse["systems"]["popularity"]["evaluated"] == expected
    typed = evaluate(events, {"popularity": PopularityRecommender()}, score_types={"purchase"}, progress=False)
    assert typed["systems"]["popularity"]["evaluated"] == 0
    batched = evaluate(events, {"cooccurrence": CooccurrenceRecommender()}, batch_size=8, progress=False)
    # waves of 8 let learning lag ranking a little, no more
    assert abs(batched["systems"]["cooccurrence"]["hr@10"] - out["systems"]["cooccurrence"]["hr@10"]) < 0.05
    with pytest.raises(ValueError, match="fractional warmup"):
        evaluate(iter(events), {"p": PopularityRecommender()}, warmup=0.2, progress=False)
    with pytest.raises(ValueError, match="parts"):
        evaluate(events, {"p": PopularityRecommender()}, parts=0, progress=False)


def test_retrain_hook_installs_new_deep_model():
    events = chain_events(10)
    calls: list[int] = []

    def retrain(history):
        calls.append(len(history))
        model = PopularityRecommender(half_life=None)  # a real model standing in as the deep retriever
        for ev in history:
            model.learn_one(UserContext.empty(ev.user_id), ev)
        return model

    hybrid = HybridRecommender()
    systems = {"hybrid": hybrid, "deep": PopularityRecommender()}
    out = evaluate(events, systems, retrain_every=20, retrain=retrain, progress=False)
    assert calls == list(range(20, len(events), 20))  # none after the last event: nothing would use it
    assert isinstance(hybrid.deep, PopularityRecommender) and hybrid.deep.n_events >= calls[-1]
    assert set(out["systems"]) == {"hybrid", "deep"}
    with pytest.raises(ValueError, match="retrain"):
        evaluate(events, systems, retrain_every=5, progress=False)


def test_retrain_from_sets_the_first_retraining_and_items_newer_than_the_deep_model_are_judged_apart():
    events = chain_events(10)  # items a, b, c, d and the distractor z
    calls: list[int] = []

    class Known(PopularityRecommender):
        """A real model standing in as the deep one, knowing only the items it was retrained on."""

        def __init__(self, items: set[str]) -> None:
            super().__init__(half_life=None)
            self.items = items

        def vocab_items(self) -> list[str]:
            return sorted(self.items)

    def retrain(history):
        calls.append(len(history))
        return Known({"a", "b"} if len(calls) == 1 else {"a", "b", "c", "d", "z"})

    systems = {"cooccurrence": CooccurrenceRecommender(), "deep": PopularityRecommender()}
    out = evaluate(events, systems, retrain_every=30, retrain_from=10, retrain=retrain, warmup=10, progress=False)
    assert calls == [10, 40, 70]
    # between events 10 and 40 the served model knows a and b only: events on c, d and z are "newer"
    expected = sum(1 for i, ev in enumerate(events[10:40], 10) if ev.item_id in "cdz"
                   and any(e.user_id == ev.user_id for e in events[10:i]))
    newer = out["systems"]["cooccurrence"]["newer_than_deep"]
    assert newer["evaluated"] == expected > 0 and 0.0 <= newer["ndcg@10"] <= 1.0
    assert out["systems"]["deep"]["newer_than_deep"]["evaluated"] == expected
    with pytest.raises(ValueError, match="retrain_from"):
        evaluate(events, systems, retrain_every=30, retrain_from=0, retrain=retrain, progress=False)


def test_rules_filter_every_list_as_the_worker_does():
    """With a rule excluding a category, no system is credited for an item of it; the cap is honoured."""
    from models.filters.catalogue import ItemCatalogue
    from models.filters.rules import ListFilter, Rules
    from schemas.items import Item

    def rules(**kw) -> ListFilter:
        cat = ItemCatalogue()
        for item in "abcd":
            cat.update(Item(item, category="walk"))
        cat.update(Item("z", category="distractor"))
        return ListFilter(cat, Rules(**kw))

    events = chain_events()
    systems = lambda: {"popularity": PopularityRecommender(), "cooccurrence": CooccurrenceRecommender()}  # noqa: E731
    plain = evaluate(events, systems(), progress=False, list_filter=rules())
    hidden = evaluate(events, systems(), progress=False, list_filter=rules(exclude_categories=frozenset({"walk"})))
    capped = evaluate(events, systems(), progress=False, list_filter=rules(max_per_category=1))
    assert plain["systems"]["cooccurrence"]["hr@10"] > 0.3
    for name in ("popularity", "cooccurrence"):
        # every judged target is an item of the hidden category: nothing can be credited
        assert hidden["systems"][name]["hr@10"] == 0.0
        assert hidden["systems"][name]["categories@10"] <= 1.0  # only the distractor is left
        assert 1.0 <= capped["systems"][name]["categories@10"] <= 2.0
        assert capped["systems"][name]["hr@10"] <= plain["systems"][name]["hr@10"]
    # one item per category: popularity's list is z and the most popular walk item, so it misses
    # every target but that one
    assert capped["systems"]["popularity"]["hr@10"] < plain["systems"]["popularity"]["hr@10"]
    assert "categories@10" not in evaluate(events, systems(), progress=False)["systems"]["popularity"]


def test_read_movielens_rejects_other_files(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("user,item\n1,2\n")
    with pytest.raises(SourceError, match="lacks column"):
        read_file(bad, "movielens")


@needs_movielens
def test_movielens_cooccurrence_and_online_beat_popularity():
    events = read_file(RATINGS, "movielens")[:12_000]
    assert len(events) == 12_000 and all(a.ts <= b.ts for a, b in pairwise(events))
    systems = {
        "popularity": PopularityRecommender(),
        "cooccurrence": CooccurrenceRecommender(),
        "online": OnlineRanker(),
    }
    out = evaluate(events, systems, every=3, progress=False)
    ndcg = {name: m["ndcg@10"] for name, m in out["systems"].items()}
    assert ndcg["cooccurrence"] > 2 * ndcg["popularity"], ndcg
    assert ndcg["online"] > ndcg["cooccurrence"], ndcg
