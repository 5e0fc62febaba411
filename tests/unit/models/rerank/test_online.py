"""Online reranking and engagement models learn from feedback."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.base import Interaction, UserContext
from models.engagement import PurchasePropensity, ReturnPredictor
from models.rerank.online import FEATURES, OnlineRanker
from tests.unit.streams import replay, synthetic_stream


def test_chosen_item_rises_when_users_keep_picking_it():
    model = OnlineRanker(n_sampled=0)
    replay(model, synthetic_stream(n=600))
    probe = UserContext("probe", recent_items=("i5", "i6"))
    before = [item for item, _ in model.rank(probe, k=10)]
    target = before[7]
    weights_before = model.model.weights
    for n in range(60):
        user = UserContext(f"new{n}", recent_items=("i5", "i6"))
        shown = tuple(item for item, _ in model.rank(user, k=10))
        assert target in shown
        model.learn_one(replace(user, shown=shown), Interaction(user.user_id, target, "click", 1e5 + n))
    after = [item for item, _ in model.rank(probe, k=10)]
    assert after.index(target) < before.index(target)
    assert model.n_pairs > 0
    assert model.model.weights != weights_before
    assert model.version == 600 + 60


def test_impression_is_labeled_once_and_memory_is_bounded():
    model = OnlineRanker(memory_users=5)
    replay(model, synthetic_stream(n=300))
    assert len(model.memory) <= 5
    user = UserContext("u-x", recent_items=("i1",))
    shown = [item for item, _ in model.rank(user, k=10)]
    assert "u-x" in model.memory
    pairs = model.n_pairs
    model.learn_one(replace(user, shown=tuple(shown)), Interaction("u-x", shown[3], "click", 1e6))
    assert model.n_pairs > pairs and "u-x" not in model.memory
    pairs = model.n_pairs
    model.learn_one(user, Interaction("u-x", shown[3], "click", 1e6 + 1))  # no impression left
    assert model.n_pairs == pairs


def test_sources_and_features_are_reported():
    model = OnlineRanker()
    replay(model, synthetic_stream(n=300))
    lst = model.rank_with_sources(UserContext("u", recent_items=("i3",)), k=10)
    assert {src for _, _, src in lst} <= {"cooccurrence", "popularity"}
    assert len(FEATURES) == len(set(FEATURES))


def test_purchase_propensity_separates_buyers_and_round_trips():
    pp = PurchasePropensity()
    buyer = UserContext("b", counts={"add_to_cart": 4, "purchase": 2, "view": 3})
    browser = UserContext("v", counts={"view": 20})
    for i in range(300):
        pp.learn_one(buyer, Interaction("b", "i", "purchase" if i % 3 else "add_to_cart", float(i)))
        pp.learn_one(browser, Interaction("v", "i", "view", float(i)))
    assert pp.predict_one(buyer) > 0.5 > pp.predict_one(browser)
    restored = PurchasePropensity.from_bytes(pp.to_bytes())
    assert restored.predict_one(buyer) == pp.predict_one(buyer)
    assert 0.0 <= restored.predict_one(UserContext.empty("new")) <= 1.0


def test_return_predictor_learns_gaps_and_expires_in_bounded_steps():
    rp = ReturnPredictor(horizon=100.0)
    ctx = {"fast": UserContext.empty("fast"), "slow": UserContext.empty("slow")}
    for step in range(300):
        for name, gap in (("fast", 10.0), ("slow", 1000.0)):
            ev = Interaction(name, "i", "click", step * gap)
            rp.learn_one(ctx[name], ev)
            ctx[name] = ctx[name].after(ev)
    assert rp.predict_one(ctx["fast"]) > 0.5 > rp.predict_one(ctx["slow"])
    for n in range(10):
        rp.learn_one(UserContext.empty(f"once{n}"), Interaction(f"once{n}", "i", "view", 0.0))
    learned = rp.n_learned
    assert rp.expire(now=1e9, max_items=4) == 4
    assert rp.n_learned == learned + 4
    restored = ReturnPredictor.from_bytes(rp.to_bytes())
    assert restored.predict_one(ctx["fast"]) == rp.predict_one(ctx["fast"])
    assert len(restored.pending) == len(rp.pending)
    with pytest.raises(ValueError, match="horizon"):
        ReturnPredictor(horizon=0)
