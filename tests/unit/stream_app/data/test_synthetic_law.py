"""The generator's own next-item law: a distribution, calibrated on the stream it drew, following the knobs."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import pytest

from models.base import Interaction
from models.evaluation.oracle import Oracle
from models.evaluation.prequential import evaluate
from models.rerank.online import OnlineRanker
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender
from stream_app.data.synthetic import generate
from stream_app.data.synthetic_law import Truth


def recorded(n: int, **kw: object) -> tuple[list[dict], list[Interaction], Truth]:
    truth = Truth()
    rows = list(generate(n, truth=truth, **kw))  # type: ignore[arg-type]
    return rows, [Interaction(e["user_id"], e["item_id"], e["type"], e["ts"]) for e in rows], truth


def test_recording_the_truth_leaves_the_stream_as_it_was_and_default_knobs_change_nothing():
    kw = {"n_users": 80, "n_items": 300, "seed": 4, "new_item_rate": 0.01}
    plain = list(generate(3000, **kw))  # type: ignore[arg-type]
    rows, _, truth = recorded(3000, **kw)
    assert rows == plain and len(truth.states) == 3000
    explicit = list(generate(3000, **kw, p_related=0.55, p_taste=0.35, funnel=(0.30, 0.25, 0.40),  # type: ignore[arg-type]
                             p_session_end=0.12))
    assert explicit == plain


def test_the_law_is_a_distribution_over_the_catalogue_so_far():
    _, events, truth = recorded(2000, n_users=40, n_items=150, seed=2, new_item_rate=0.0)
    law = truth.law()
    for n, ev in enumerate(events):
        law.observe(ev)
        if n % 250 == 0:
            total = sum(law.probability(ev.user_id, f"i-{i}") for i in range(150))
            assert total == pytest.approx(1.0, abs=1e-9)
            top = law.most_likely(ev.user_id, 150, ())
            assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
            assert all(law.probability(ev.user_id, item) == pytest.approx(p) for item, p in top[:20])


def test_most_likely_leaves_out_the_exclusions_and_keeps_the_order_of_the_rest():
    _, events, truth = recorded(1500, n_users=30, n_items=200, seed=5)
    law = truth.law()
    for ev in events:
        law.observe(ev)
    user = events[-1].user_id
    full = law.most_likely(user, 30, ())
    banned = {full[0][0], full[3][0]}
    assert law.most_likely(user, 20, banned) == [r for r in full if r[0] not in banned][:20]


def test_the_law_is_calibrated_on_the_stream_it_describes():
    """The most probable next item is the next one as often as its probability says (within 4 se).

    Judged on predictions of the first quarter only, where almost every user comes back before
    the stream ends (at the end, users who stay away are never judged, which favours the session
    going on)."""
    n = 24_000
    _, events, truth = recorded(n, n_users=1000, n_items=1000, seed=2)
    law = truth.law()
    pending: dict[str, tuple[str, float, int]] = {}
    probs, hits = [], []
    for t, ev in enumerate(events):
        if ev.user_id in pending:
            item, p, t0 = pending[ev.user_id]
            if t0 < n // 4:
                probs.append(p)
                hits.append(item == ev.item_id)
        law.observe(ev)
        item, p = law.most_likely(ev.user_id, 1, ())[0]
        pending[ev.user_id] = (item, p, t)
    se = math.sqrt(sum(p * (1 - p) for p in probs)) / len(probs)
    assert len(probs) > 5000
    assert abs(sum(hits) / len(hits) - sum(probs) / len(probs)) < 4 * se


def share_following_related(rows: list[dict], truth: Truth) -> float:
    """Share of views, after a view in the same session, that are one of the previous item's related items."""
    last: dict[str, int] = {}
    followed = total = 0
    for i, (row, state) in enumerate(zip(rows, truth.states)):
        prev = last.get(row["session_id"])
        if prev is not None:
            total += 1
            followed += state[3] in truth.states[prev][4]
        last[row["session_id"]] = i
    assert total > 5_000
    return followed / total


KNOBS = {"n_users": 300, "n_items": 400, "seed": 8, "funnel": None, "new_item_rate": 0.0}


def test_a_sequence_only_stream_puts_the_planted_successor_first():
    """p_related=1: every view inside a session is one of the previous item's related items, and
    the law's favourite after an item is the successor the stream shows most often."""
    rows, events, truth = recorded(12_000, **KNOBS, p_related=1.0, p_taste=0.0)
    assert {e["type"] for e in rows} == {"view"}
    assert share_following_related(rows, truth) == 1.0
    law = truth.law()
    favourite: dict[str, str] = {}
    follows: dict[str, Counter[str]] = defaultdict(Counter)
    last: dict[str, str] = {}
    for row, ev in zip(rows, events):
        prev = last.get(row["session_id"])
        if prev is not None:
            follows[prev][ev.item_id] += 1
        last[row["session_id"]] = ev.item_id
        law.observe(ev)
        favourite[ev.item_id] = law.most_likely(ev.user_id, 1, ())[0][0]
    frequent = [item for item, c in follows.items() if sum(c.values()) >= 40]
    assert len(frequent) > 20
    agree = sum(favourite[item] == follows[item].most_common(1)[0][0] for item in frequent)
    assert agree >= 0.9 * len(frequent)


def test_the_mix_of_sequence_and_taste_does_what_it_says():
    shares = {p: share_following_related(*recorded(10_000, **KNOBS, p_related=p)[::2]) for p in (0.0, 0.55)}
    assert shares[0.0] < 0.15 < 0.55 <= shares[0.55] < 0.75


def test_bad_knobs_are_refused_with_their_name():
    with pytest.raises(ValueError, match="p_related"):
        generate(1, p_related=0.8, p_taste=0.5)
    with pytest.raises(ValueError, match=r"funnel\[1\]"):
        generate(1, funnel=(0.3, 1.5, 0.4))
    with pytest.raises(ValueError, match="p_session_end"):
        generate(1, p_session_end=-0.1)


@pytest.fixture(scope="module")
def planted_replay() -> dict:
    """A default synthetic stream replayed by the real models and by the oracle, side by side."""
    _, events, truth = recorded(2500, n_users=100, n_items=300, seed=3)
    systems = {"popularity": PopularityRecommender(), "cooccurrence": CooccurrenceRecommender(),
               "online": OnlineRanker(seed=0), "oracle": Oracle(truth.law())}
    return evaluate(events, systems, batch_size=64, warmup=500, progress=False)["systems"]


def test_the_oracle_beats_every_system_on_the_synthetic_stream(planted_replay: dict):
    oracle = planted_replay["oracle"]
    for name, m in planted_replay.items():
        assert m["evaluated"] == oracle["evaluated"], name
        if name != "oracle":
            assert oracle["ndcg@10"] > m["ndcg@10"] and oracle["hr@10"] > m["hr@10"], name
