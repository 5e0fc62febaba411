"""The ranking contract of models/base.py, checked on every model in models.catalog.MODELS."""

from __future__ import annotations

import pytest

from models.base import Interaction, UserContext
from models.catalog import MODELS
from models.checkpoint import CheckpointError
from models.hybrid import HybridRecommender
from tests.unit.streams import replay, synthetic_stream


@pytest.fixture(scope="module", params=sorted(MODELS))
def trained(request):
    model = MODELS[request.param]()
    ctx = replay(model, synthetic_stream())
    return model, ctx


def check_ranked(ranked, k, exclude):
    items = [item for item, _ in ranked]
    scores = [s for _, s in ranked]
    assert len(ranked) <= k
    assert len(set(items)) == len(items), f"duplicates in {items}"
    assert not set(items) & set(exclude)
    assert all(a >= b for a, b in zip(scores, scores[1:])), f"scores increase: {scores}"


def test_rank_obeys_contract(trained):
    model, ctx = trained
    for user in list(ctx.values())[:10]:
        exclude = set(user.purchased) | set(user.recent_items[-3:])
        for k in (1, 5, 10, 25):
            ranked = model.rank(user, k=k, exclude=exclude)
            check_ranked(ranked, k, exclude)
            assert len(ranked) >= min(k, 5), "a trained model must fill short lists"


def test_predict_one_matches_rank(trained):
    model, ctx = trained
    user = ctx["u3"]
    ranked = model.rank(user, k=10)
    assert ranked
    for item, score in ranked:
        assert model.predict_one(user, item) == pytest.approx(score, rel=1e-6, abs=1e-9)


def test_rank_many_matches_rank(trained):
    model, ctx = trained
    users = [ctx["u1"], ctx["u2"], UserContext.empty("stranger")]
    excludes = [u.purchased for u in users]
    assert model.rank_many(users, 7, excludes) == [model.rank(u, 7, ex) for u, ex in zip(users, excludes)]


def test_checkpoint_round_trip(trained):
    model, ctx = trained
    data = model.to_bytes()
    assert isinstance(data, bytes) and b"\x80\x03" not in data[:2]  # not a pickle
    restored = type(model).from_bytes(data)
    assert restored.version == model.version
    for user in [ctx["u0"], ctx["u7"], UserContext.empty("stranger")]:
        assert restored.rank(user, k=10, exclude=user.purchased) == model.rank(user, k=10, exclude=user.purchased)
        item = model.rank(user, k=1)[0][0]
        assert restored.predict_one(user, item) == model.predict_one(user, item)


def test_checkpoint_of_another_model_is_refused(trained):
    model, _ = trained
    other = next(name for name in MODELS if MODELS[name] is not type(model))
    with pytest.raises(CheckpointError):
        type(model).from_bytes(MODELS[other]().to_bytes())
    with pytest.raises(CheckpointError):
        type(model).from_bytes(b"not a checkpoint")


def test_unknown_user_gets_recommendations(trained):
    model, _ = trained
    ranked = model.rank(UserContext.empty("never-seen"), k=5)
    check_ranked(ranked, 5, ())
    assert len(ranked) == 5


@pytest.mark.parametrize("name", sorted(MODELS))
def test_empty_model_ranks_without_crashing(name):
    model = MODELS[name]()
    user = UserContext("u", recent_items=("x", "y"), purchased=frozenset({"x"}))
    assert model.rank(user, k=5) == []
    assert model.rank_many([user, UserContext.empty("v")], k=3) == [[], []]
    assert isinstance(model.predict_one(user, "x"), float)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unknown_event_type_is_refused(name):
    model = MODELS[name]()
    with pytest.raises(ValueError, match="unknown event type"):
        model.learn_one(UserContext.empty("u"), Interaction("u", "i", "teleport", 1.0))


def test_hybrid_with_real_deep_retriever():
    deep_mod = pytest.importorskip("models.deep.model", reason="models.deep.model (torch sequence model) not importable")
    events = synthetic_stream(n=400)
    items = sorted({ev.item_id for ev in events})
    net = deep_mod.SequenceModel(n_items=len(items), dim=8, layers=1, heads=1, max_len=8)
    deep = deep_mod.DeepRecommender(net, deep_mod.Vocabulary(items), version="test-1")
    hybrid = HybridRecommender()
    ctx = replay(hybrid, events[:200])
    hybrid.set_deep(deep)
    ctx.update(replay(hybrid, events[200:]))
    users = list(ctx.values())[:6]
    excludes = [u.purchased | {u.recent_items[-1]} for u in users]
    lists = hybrid.rank_many_with_sources(users, k=10, excludes=excludes)
    sources = set()
    for lst, ex in zip(lists, excludes):
        check_ranked([(i, s) for i, s, _ in lst], 10, ex)
        sources.update(src for _, _, src in lst)
    assert sources <= {"deep", "cooccurrence", "popularity"}
    assert "deep" in sources
    assert hybrid.deep_version == "test-1"
    restored = HybridRecommender.from_bytes(hybrid.to_bytes(), deep=deep)
    assert restored.rank_many(users, 10, excludes) == hybrid.rank_many(users, 10, excludes)
