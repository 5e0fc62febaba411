"""The deep model's user-vector cache serves exactly what a fresh forward pass computes."""

from __future__ import annotations

import random

import pytest
import torch

from models.base import UserContext
from models.deep.model import DeepRecommender, SequenceModel, Vocabulary
from models.deep.vectors import VectorCache


def _model(n_items: int = 30) -> DeepRecommender:
    torch.manual_seed(0)
    net = SequenceModel(n_items=n_items, dim=8, layers=1, heads=1, max_len=6)
    return DeepRecommender(net, Vocabulary([f"i-{k}" for k in range(n_items)]))


def _users(rng: random.Random, n: int) -> list[UserContext]:
    out = []
    for k in range(n):
        hist = [f"i-{rng.randrange(30)}" for _ in range(rng.randrange(0, 9))]
        if hist and rng.random() < 0.4:
            hist.append(hist[-1])  # a funnel step on the same item: collapses to the same sequence
        if rng.random() < 0.2:
            hist.append("unknown-item")  # not in the vocabulary: skipped
        out.append(UserContext(f"u-{k}", tuple(hist)))
    return out


@pytest.mark.parametrize("capacity", [2048, 40])
def test_cached_vectors_equal_fresh_ones(capacity):
    rng = random.Random(1)
    cached, fresh = _model(), _model()
    cached.vectors = VectorCache(capacity)
    for _ in range(12):
        users = _users(rng, 16)
        with torch.inference_mode():
            got = cached.user_vectors(users)
            want = torch.stack([fresh._last_states([h])[0] for h in fresh._histories(users)])
        assert torch.allclose(got, want, atol=1e-5)
    assert cached.vectors.computed < cached.vectors.asked  # repeats, unknown items and shared histories
    assert len(cached.vectors.slots) <= capacity


def test_a_call_larger_than_half_the_cache_is_computed_whole():
    rec = _model()
    rec.vectors = VectorCache(8)
    users = _users(random.Random(2), 10)
    with torch.inference_mode():
        rec.user_vectors(users)
    assert rec.vectors.computed == 10 and not rec.vectors.slots


def test_a_model_in_training_mode_bypasses_the_cache():
    rec = _model()
    users = _users(random.Random(3), 5)
    rec.model.train()
    with torch.no_grad():
        rec.user_vectors(users)
    assert rec.vectors.asked == 0
    rec.model.eval()
    with torch.no_grad():
        rec.user_vectors(users)
    assert rec.vectors.asked == 5


def test_capacity_below_two_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        VectorCache(1)


def test_length_buckets_give_the_vectors_of_the_whole_batch():
    from models.deep.model import encode_batch, length_buckets

    rec = _model()
    rng = random.Random(4)
    hists = [[rng.randrange(1, 31) for _ in range(rng.choice([1, 1, 2, 3, 5]))] for _ in range(150)]
    hists += [[rng.randrange(1, 31) for _ in range(5)] for _ in range(20)]
    seqs, last = encode_batch(hists, rec.model.max_len)
    assert len(length_buckets(last.numpy())) == 2  # short histories apart from the long ones
    with torch.inference_mode():
        whole = rec.model.last_states(seqs[:, : int(last.max()) + 1], last)
        assert torch.allclose(rec._last_states(hists), whole, atol=1e-5)
