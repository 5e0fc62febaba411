"""Training to convergence: early stopping on the per-user validation, sampled softmax, shop repeats."""

from __future__ import annotations

import random

import pytest
import torch

from models.base import Interaction
from models.deep.config import TrainConfig
from models.deep.data import check_events, repeat_rate, split, validation
from models.deep.train import train
from tests.unit.models.deep.test_train import N_ITEMS, chain_events

torch.set_num_threads(2)

SMALL = dict(dim=16, layers=1, heads=2, max_len=8, batch_size=32, lr=1e-2, dropout=0.0, weight_decay=0.0,
             window_stride=0, seed=3)


def test_early_stopping_stops_once_validation_stops_improving():
    # every user walks a chain: the next item is certain, so validation saturates and stops improving
    cfg = TrainConfig(**SMALL, epochs=40, patience=2, refit_full=False)
    res = train(chain_events(n_users=60, length=10), cfg, device="cpu", progress=False)
    scores = [h["ndcg@10"] for h in res.history]
    best = int(res.metrics["best_epoch"])
    assert len(scores) < 40, scores  # stopped well before the most epochs
    assert len(scores) == best + 2  # exactly `patience` epochs after the best one
    assert max(scores[best:]) <= scores[best - 1]  # and those were no better
    assert scores[best - 1] > 0.8, scores  # it learned the chain before stopping
    assert res.metrics["validation_targets"] == 60  # one held-out item per user
    assert res.metrics["ndcg@10"] > 0.8  # and the fresh holdout agrees


def test_refit_trains_all_events_for_the_best_epoch_count():
    cfg = TrainConfig(**SMALL, epochs=30, patience=1)
    events = chain_events(n_users=40, length=10)
    res = train(events, cfg, device="cpu", progress=False)
    refit = [h for h in res.history if h.get("refit")]
    assert len(refit) == res.metrics["refit_epochs"] == res.metrics["best_epoch"]
    assert res.data_end_ts == max(e.ts for e in events)


def test_validation_holds_out_each_users_last_items():
    users = {"a": [1, 2, 3, 4, 5], "b": [6, 7], "c": [1, 3, 5, 7]}
    seqs, val = validation(users, TrainConfig(validation_items=2))
    # b is too short to give targets (one item must stay to learn from); a and c give their last two
    assert sorted(map(tuple, seqs)) == [(1, 2, 3), (1, 3), (6, 7)]
    assert val.eval_target == [4, 5, 5, 7]
    assert val.eval_hist == [[1, 2, 3], [1, 2, 3, 4], [1, 3], [1, 3, 5]]


def test_sampled_softmax_with_logq_trains_and_lowers_the_loss():
    # 50 items over a threshold of 10: the catalogue counts as large, so the sampled softmax is used
    assert not TrainConfig(full_softmax_max_items=10).full_softmax(N_ITEMS) and TrainConfig().full_softmax(N_ITEMS)
    cfg = TrainConfig(**{**SMALL, "max_len": 12}, epochs=6, patience=0, refit_full=False,
                      full_softmax_max_items=10, negatives=16)
    assert not cfg.full_softmax(N_ITEMS)
    res = train(chain_events(n_users=80, length=12), cfg, device="cpu", progress=False)
    assert res.metrics["full_softmax"] == 0.0
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < 0.7 * losses[0], losses
    assert res.metrics["hr@10"] > 0.6, res.metrics  # random ranking of 50 items reaches about 0.2


def shop_events(n_users: int = 40, seed: int = 0) -> list[Interaction]:
    """Users browse five products each and keep coming back to them (a shop's repeats)."""
    rng = random.Random(seed)
    out = []
    for u in range(n_users):
        basket = rng.sample(range(30), 5)
        for t in range(15):
            out.append(Interaction(f"u{u}", f"p{rng.choice(basket)}", "view", float(t * 100 + u)))
    return out


def test_shop_data_keeps_repeats_rating_data_excludes_seen():
    shop = check_events(shop_events())
    held = split(shop, TrainConfig())
    assert repeat_rate(held.train_seqs) > 0.3
    assert TrainConfig().resolved(1000, 30, repeat_rate(held.train_seqs)).exclude_seen is False
    ratings = check_events(chain_events(n_users=20, length=10))  # nobody meets an item twice
    assert TrainConfig().resolved(1000, 50, repeat_rate(split(ratings, TrainConfig()).train_seqs)).exclude_seen
    # a return to an earlier product stays a target (only the item just touched is skipped)
    assert any(t in s for t, s in zip(held.holdout.target, held.holdout.seen))
    assert all(not h or h[-1] != t for t, h in zip(held.holdout.target, held.holdout.history))


def test_regularisation_and_epochs_follow_the_data_size():
    small = TrainConfig().resolved(interactions=20_000, items=3_000, repeat_rate=0.0)
    large = TrainConfig().resolved(interactions=5_000_000, items=300_000, repeat_rate=0.0)
    assert (small.dropout, small.weight_decay, small.epochs) == (0.5, 0.1, 100)
    assert (large.dropout, large.weight_decay, large.epochs) == (0.2, 0.01, 20)
    stated = TrainConfig(dropout=0.1, epochs=3).resolved(interactions=20_000, items=3_000, repeat_rate=0.0)
    assert (stated.dropout, stated.epochs) == (0.1, 3)
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
