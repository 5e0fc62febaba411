"""Warm-started retraining: the serving model grows for new items and learns them from recent events."""

from __future__ import annotations

import torch

from models.base import Interaction, UserContext
from models.deep.config import TrainConfig
from models.deep.gate import MIN_USERS
from models.deep.model import SequenceModel, Vocabulary
from models.deep.registry import Registry
from models.deep.train import train
from models.deep.warm import Start, grow, recent_tails, warm_train

torch.set_num_threads(2)

CFG = dict(dim=16, layers=1, heads=2, max_len=8, batch_size=32, lr=1e-2, dropout=0.0, weight_decay=0.0,
           window_stride=0, seed=3, patience=0, refit_full=False)


def walks(prefix: str, n_items: int, n_users: int, length: int, t0: float, user0: int = 0) -> list[Interaction]:
    """Each user walks a chain of ``prefix`` items, ``i -> i+1 (mod n_items)``, from their own start."""
    return [Interaction(f"u{user0 + u}", f"{prefix}{(u * 7 + t) % n_items}", "click", t0 + t * 1000.0 + u)
            for u in range(n_users) for t in range(length)]


def chain_hits(rec, prefix: str, n_items: int, users: int = 40) -> float:
    """Share of chain positions where the model's top 3 holds the next item of the chain."""
    ctxs = [UserContext.empty(f"probe{j}") for j in range(users)]
    ctxs = [UserContext(c.user_id, (f"{prefix}{j % n_items}", f"{prefix}{(j + 1) % n_items}"), c.purchased,
                        c.counts, (), 0.0, c.purchase_order, c.hidden) for j, c in enumerate(ctxs)]
    lists = rec.rank_many(ctxs, 3, [frozenset()] * users)
    return sum(f"{prefix}{(j + 2) % n_items}" in [i for i, _ in got] for j, got in enumerate(lists)) / users


def test_grow_keeps_known_vectors_and_starts_new_items_from_their_neighbours():
    old = SequenceModel(n_items=3, dim=8, layers=1, heads=2, max_len=4)
    new_vocab = Vocabulary(["c", "x", "a", "b", "y"])  # x, y are new; y has no neighbour
    seqs = [[3, 2], [4, 2, 1]]  # a->x, b->x->c: x sits next to a, b and c
    model, n_new = grow(old, Vocabulary(["a", "b", "c"]), new_vocab, seqs, 0.0, torch.device("cpu"))
    w, ow = model.item_emb.weight, old.item_emb.weight
    assert n_new == 2
    for item, j in new_vocab.index.items():
        if item in "abc":
            assert torch.equal(w[j], ow[" abc".index(item)])
    # x: the mean of its neighbours' vectors (a once, b once, c once)
    assert torch.allclose(w[2], (ow[1] + ow[2] + ow[3]) / 3)
    assert torch.isfinite(w[5]).all() and not torch.equal(w[5], torch.zeros(8))  # y: a random start
    # everything but the item table is the old model's
    for name, t in old.state_dict().items():
        if name != "item_emb.weight":
            assert torch.equal(model.state_dict()[name], t), name


def test_recent_tails_read_active_users_and_as_many_others():
    evs = [Interaction(u, "i", "click", ts) for u, ts in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("a", 10.0)]]
    by_user = {"a": list(range(1, 31)), "b": [1, 2, 3], "c": [4, 5, 6, 7]}
    tails = recent_tails(evs, by_user, since=5.0, max_len=8, seed=0)
    assert tails[0] == list(range(23, 31))  # a's one new item and 7 of context
    assert len(tails) == 2 and tails[1] in ([1, 2, 3], [4, 5, 6, 7])  # one other user, drawn at random
    assert len(recent_tails(evs, by_user, since=None, max_len=8, seed=0)) == 3  # no previous data: all


def test_a_warm_retraining_learns_new_items_and_keeps_the_old_ones():
    old_log = walks("a", 20, 60, 10, 0.0)
    first = train(old_log, TrainConfig(**CFG, epochs=25), device="cpu", progress=False)
    assert chain_hits(first.recommender(), "a", 20) > 0.8
    # new users walk a chain of items the first model has never seen
    log = old_log + walks("n", 15, 60, 10, 1e6, user0=100)
    warm = warm_train(log, Start.of(first), epochs=12, device="cpu", progress=False)
    assert warm.metrics["new_items"] == 15
    assert chain_hits(warm.recommender(), "n", 15) > 0.6  # it learned the new chain
    assert chain_hits(warm.recommender(), "a", 20) > 0.6  # and did not forget the old one
    # it read the 60 new users' tails and as many old ones, not the whole log
    assert warm.metrics["train_sequences"] == 120
    assert warm.data_end_ts == max(e.ts for e in log)


def test_a_warm_candidate_is_scored_on_the_fresh_holdout_and_gated(tmp_path):
    old_log = walks("a", 20, 60, 10, 0.0)
    registry = Registry(tmp_path)
    first = train(old_log, TrainConfig(**CFG, epochs=20), device="cpu", progress=False)
    v1, _ = registry.save(first)
    log = old_log + walks("a", 20, 600, 4, 1e6, user0=100)
    start = Start.of_artifact(registry.load(v1), registry.manifest(v1))
    assert start.data_end_ts == first.data_end_ts
    warm = warm_train(log, start, epochs=2, device="cpu", progress=False, score=True)
    assert warm.holdout is not None and warm.holdout_gains is not None
    assert warm.metrics["holdout_users"] >= MIN_USERS
    assert warm.holdout.from_ts > first.data_end_ts  # both models are scored on events neither trained on
    v2, promoted = registry.save(warm)
    gate = registry.manifest(v2)["gate"]
    assert gate["rule"] == "shared-holdout" and promoted == gate["promote"]
    assert registry.manifest(v2)["metrics"]["warm_start"] == 1.0


def test_an_older_manifest_still_warm_starts_with_its_known_settings():
    log = walks("a", 20, 30, 6, 0.0)
    first = train(log, TrainConfig(**CFG, epochs=2), device="cpu", progress=False)
    # settings that no longer exist are dropped; fields never resolved are chosen from the data
    start = Start.of_artifact(first.recommender(), {"config": {"lr": 0.005, "gone_setting": 1}})
    assert start.config.lr == 0.005 and start.config.weight_decay is None and start.data_end_ts is None
    warm = warm_train(log + walks("a", 20, 30, 2, 1e6, user0=50), start, epochs=1, device="cpu", progress=False)
    assert warm.config.weight_decay is not None and warm.config.exclude_seen is not None
    assert warm.metrics["train_sequences"] == 60  # no data end known: every user's sequence is read
