"""The deep sequence model's batched scoring and its checks (real torch, CPU)."""

from __future__ import annotations

import math

import pytest
import torch

from models.base import Interaction, UserContext
from models.deep.model import DeepRecommender, SequenceModel, Vocabulary, collapse_repeats, encode_batch

torch.set_num_threads(2)


def make_rec(n_items: int = 40, seed: int = 0, max_len: int = 8) -> DeepRecommender:
    torch.manual_seed(seed)
    net = SequenceModel(n_items=n_items, dim=16, layers=2, heads=2, max_len=max_len)
    return DeepRecommender(net, Vocabulary([f"i{j}" for j in range(n_items)]), version="v-test")


def users() -> list[UserContext]:
    return [
        UserContext.empty("new"),
        UserContext("a", recent_items=("i1", "i2", "i3")),
        UserContext("b", recent_items=("unknown-1", "i5", "i5", "unknown-2")),
        UserContext("c", recent_items=tuple(f"i{j % 40}" for j in range(100))),  # longer than max_len
    ]


def test_vocabulary_skips_unknown_and_refuses_duplicates():
    v = Vocabulary(["a", "b"])
    assert v.encode(["b", "zz", "a", "b"]) == [2, 1, 2]
    assert v.item(2) == "b" and "a" in v and "zz" not in v
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="non-empty"):
        Vocabulary(["a", ""])


def test_encode_batch_layout():
    seqs, last = encode_batch([[], [3, 4], [1, 2, 3, 4, 5, 6]], max_len=4)
    assert seqs.tolist() == [[0, 0, 0, 0], [0, 3, 4, 0], [0, 4, 5, 6]]
    assert last.tolist() == [0, 2, 3]
    assert collapse_repeats([5, 5, 6, 5]) == [5, 6, 5]


def test_rank_many_equals_rank_per_user():
    rec = make_rec()
    excludes = [frozenset(), {"i0", "i1"}, {"nope"}, {f"i{j}" for j in range(30)}]
    batch = rec.rank_many(users(), k=10, excludes=excludes)
    for user, ex, got in zip(users(), excludes, batch):
        single = rec.rank(user, k=10, exclude=ex)
        assert [i for i, _ in got] == [i for i, _ in single]
        assert [s for _, s in got] == pytest.approx([s for _, s in single], rel=1e-5, abs=1e-5)


def test_padding_does_not_change_a_users_vector():
    rec = make_rec()
    alone = rec.user_vectors([users()[1]])
    together = rec.user_vectors(users())[1:2]
    assert torch.allclose(alone, together, atol=1e-5)


def test_rank_excludes_sorted_unique_and_k():
    rec = make_rec()
    user = UserContext("a", recent_items=("i1", "i2"))
    exclude = {f"i{j}" for j in range(0, 40, 2)}  # every even item
    ranked = rec.rank(user, k=15, exclude=exclude)
    items = [i for i, _ in ranked]
    scores = [s for _, s in ranked]
    assert len(items) == 15 and len(set(items)) == 15
    assert not set(items) & exclude
    assert scores == sorted(scores, reverse=True)
    assert all(math.isfinite(s) for s in scores)
    # more excluded than available: only what is left
    ranked = rec.rank(user, k=10, exclude={f"i{j}" for j in range(37)})
    assert sorted(i for i, _ in ranked) == ["i37", "i38", "i39"]
    assert rec.rank(user, k=0) == []
    assert rec.rank_many([], k=5) == []


def test_exclude_history_drops_the_users_own_items():
    plain, no_repeat = make_rec(), make_rec()
    no_repeat.exclude_history = True
    user = UserContext("a", recent_items=("i1", "i2", "unknown", "i3"))
    full = [i for i, _ in plain.rank(user, k=40)]
    kept = [i for i, _ in no_repeat.rank(user, k=40, exclude={"i4"})]
    assert set(full) == {f"i{j}" for j in range(40)}
    assert kept == [i for i in full if i not in {"i1", "i2", "i3", "i4"}]  # same order, history gone
    assert no_repeat.predict_one(user, "i2") == float("-inf")
    assert math.isfinite(no_repeat.predict_one(user, "i5"))
    # batched: each user loses only their own history
    both = no_repeat.rank_many([user, UserContext("b", recent_items=("i5",))], k=40)
    assert {i for i, _ in both[0]} == set(full) - {"i1", "i2", "i3"}
    assert {i for i, _ in both[1]} == set(full) - {"i5"}


def test_predict_one_matches_rank_scores():
    rec = make_rec()
    user = users()[1]
    for item, score in rec.rank(user, k=5):
        assert rec.predict_one(user, item) == pytest.approx(score, rel=1e-5, abs=1e-5)
    assert rec.predict_one(user, "not-in-vocab") == float("-inf")


def test_learn_one_is_a_noop_and_version():
    rec = make_rec()
    user = users()[1]
    before = rec.rank(user, k=5)
    rec.learn_one(user, Interaction("a", "i9", "purchase", 1.0))
    assert rec.rank(user, k=5) == before
    assert rec.version == "v-test" and rec.name == "deep"
    assert rec.vocab_items()[:2] == ["i0", "i1"] and len(rec.vocab_items()) == 40


def test_check_passes_and_catches_nan():
    rec = make_rec()
    rec.check(users())
    with torch.no_grad():
        rec.model.item_emb.weight[7, 3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        rec.check(users())


def test_vocab_size_must_match_model():
    net = SequenceModel(n_items=3, dim=8, layers=1, heads=1, max_len=4)
    with pytest.raises(ValueError, match="vocabulary has 2 items"):
        DeepRecommender(net, ["a", "b"])
    with pytest.raises(ValueError, match="exclude sets"):
        DeepRecommender(net, ["a", "b", "c"]).rank_many([UserContext.empty("u")], 3, [set(), set()])


@pytest.mark.parametrize("layers,heads", [(1, 1), (2, 2), (3, 4)])
def test_serving_pass_equals_the_full_forward_at_each_rows_last_position(layers, heads):
    from models.deep.model import SequenceModel, encode_batch

    torch.manual_seed(layers)
    net = SequenceModel(n_items=300, dim=32, layers=layers, heads=heads, max_len=21).eval()
    gen = torch.Generator().manual_seed(7)
    histories = [torch.randint(1, 301, (int(n),), generator=gen).tolist()
                 for n in torch.randint(0, 30, (64,), generator=gen)]
    seqs, last = encode_batch(histories, net.max_len)
    seqs = seqs[:, : int(last.max()) + 1]
    with torch.inference_mode():
        full = net(seqs)[torch.arange(len(seqs)), last]
        fast = net.last_states(seqs, last)
    assert torch.allclose(fast, full, atol=1e-5), (fast - full).abs().max()
    with pytest.raises(RuntimeError, match="eval"):
        net.train().last_states(seqs, last)
