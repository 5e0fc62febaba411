"""Serving what was trained: the pool chosen by coverage, and the history length of training."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from models.base import Interaction, UserContext
from models.deep.config import TrainConfig
from models.deep.model import DeepRecommender, SequenceModel, Vocabulary
from models.deep.registry import Registry
from models.deep.retriever import FALLBACK_POOL, HeadRetriever
from models.deep.serving import serving_plan
from models.deep.train import train
from models.hybrid import HybridRecommender

torch.set_num_threads(2)


def skewed_events(n_users: int = 120, length: int = 12, n_items: int = 300, seed: int = 0) -> list[Interaction]:
    """Zipf-like popularity over ``n_items``: a head of few items takes most interactions."""
    rng = random.Random(seed)
    weights = [1.0 / (r + 1) ** 1.1 for r in range(n_items)]
    out = []
    for u in range(n_users):
        for t, j in enumerate(rng.choices(range(n_items), weights, k=length)):
            out.append(Interaction(f"u{u}", f"i{j}", "click", float(t * 1000 + u)))
    return out


@pytest.fixture(scope="module")
def skewed():
    cfg = TrainConfig(dim=16, layers=1, heads=2, max_len=10, epochs=1, patience=0, seed=0)
    events = skewed_events()
    return events, train(events, cfg, device="cpu", progress=False)


def test_pool_covers_95_percent_of_training_interactions(skewed):
    events, res = skewed
    pool = res.serving["pool_size"]
    assert 1 < pool < len(res.vocab)  # a real cut: the tail is left to co-occurrence
    # counted independently from the events (consecutive repeats collapsed, as the trainer does)
    per_user: dict[str, list[str]] = {}
    for e in sorted(events, key=lambda e: e.ts):
        seq = per_user.setdefault(e.user_id, [])
        if not seq or seq[-1] != e.item_id:
            seq.append(e.item_id)
    counts = Counter(i for seq in per_user.values() for i in seq)
    total = sum(counts.values())
    covered = sum(counts[i] for i in res.vocab.items[:pool])
    assert covered / total >= 0.95
    assert res.serving["pool_coverage"] == pytest.approx(covered / total)
    assert sum(counts[i] for i in res.vocab.items[:pool - 1]) / total < 0.95  # the fewest that do
    head = HeadRetriever(res.recommender("v"))
    assert head.items == res.vocab.items[:pool]


def test_the_pool_survives_the_registry_and_settings_override_it(skewed, tmp_path):
    _, res = skewed
    reg = Registry(tmp_path)
    version, _ = reg.save(res)
    loaded = reg.load(version)
    assert loaded.pool_size == res.serving["pool_size"]
    assert reg.manifest(version)["serving"]["pool_coverage"] >= 0.95
    assert len(HeadRetriever(loaded).items) == res.serving["pool_size"]
    assert len(HeadRetriever(loaded, pool_size=7).items) == 7
    assert len(HeadRetriever(loaded, pool_size=0).items) == len(res.vocab)


def test_a_model_without_a_recorded_pool_serves_the_fallback():
    torch.manual_seed(0)
    rec = DeepRecommender(SequenceModel(5000, dim=8, layers=1, heads=1, max_len=6), [f"i{j}" for j in range(5000)])
    assert len(HeadRetriever(rec).items) == FALLBACK_POOL


def test_serving_plan_on_a_known_distribution():
    vocab = Vocabulary(["a", "b", "c", "d"])
    seqs = [[1] * 1, [1, 2] * 30, [3, 4]]  # a: 31, b: 30, c: 1, d: 1 of 63 interactions
    plan = serving_plan(vocab, seqs, TrainConfig())
    assert plan["pool_size"] == 2 and plan["pool_coverage"] == pytest.approx(61 / 63)
    assert serving_plan(vocab, seqs, TrainConfig(pool_coverage=1.0))["pool_size"] == 4


def test_served_history_is_the_trained_length():
    torch.manual_seed(1)
    max_len = 12
    net = SequenceModel(40, dim=16, layers=2, heads=2, max_len=max_len).eval()
    rec = DeepRecommender(net, [f"i{j}" for j in range(40)], "v", pool_size=40)
    head = HeadRetriever(rec)
    assert head.history == max_len - 1
    hybrid = HybridRecommender()
    served = hybrid.serving_retriever(rec)
    assert isinstance(served, HeadRetriever) and served.history == max_len - 1
    # a user with a long history is encoded exactly as the model reads it (its last max_len-1 items)
    user = UserContext("u", recent_items=tuple(f"i{(7 * t) % 40}" for t in range(60)))
    assert torch.allclose(head.deep.user_vectors([user], head.history), rec.user_vectors([user]))
    short = HeadRetriever(rec, history=3)
    assert not torch.allclose(short.deep.user_vectors([user], short.history), rec.user_vectors([user]))
    hybrid.deep_history = 3  # the setting stays an override
    assert hybrid.serving_retriever(rec).history == 3  # type: ignore[attr-defined]
