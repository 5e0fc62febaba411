"""The promotion gate: candidate and serving model on the same fresh holdout, decided beyond its noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models.deep.data import check_events, split
from models.deep.gate import compare, target_gains
from models.deep.model import DeepRecommender, SequenceModel
from models.deep.registry import Registry
from models.deep.train import TrainConfig, TrainResult, train
from tests.unit.models.deep.test_train import TINY, chain_events

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def good() -> TrainResult:
    return train(chain_events(n_users=100, length=12), TrainConfig(**{**TINY, "epochs": 6}), device="cpu",
                 progress=False)


def untrained_like(res: TrainResult) -> TrainResult:
    """A candidate with the same vocabulary and holdout that learned nothing (clearly worse)."""
    torch.manual_seed(123)
    net = SequenceModel(len(res.vocab), res.model.dim, res.model.layers, res.model.heads, res.model.max_len).eval()
    assert res.holdout is not None
    gains = target_gains(DeepRecommender(net, res.vocab), res.holdout)
    return dataclasses.replace(res, model=net, metrics={**res.metrics, "ndcg@10": float(gains.mean())},
                               holdout_gains=gains)


def test_candidate_gains_are_its_holdout_metrics(good):
    assert good.holdout is not None and good.holdout_gains is not None
    assert len(good.holdout_gains) == good.metrics["holdout_targets"] == len(good.holdout)
    assert good.metrics["ndcg@10"] == pytest.approx(float(good.holdout_gains.mean()))
    assert good.metrics["ndcg@10"] > 0.5  # the chain is learned
    # the same model scored again through the gate's function gives the same rows
    again = target_gains(good.recommender(), good.holdout)
    assert np.allclose(again, good.holdout_gains)


def test_gate_refuses_a_worse_candidate_and_accepts_an_equal_one(good, tmp_path):
    reg = Registry(tmp_path)
    first, promoted = reg.save(good)
    assert promoted and reg.manifest(first)["gate"]["rule"] == "first"
    worse = untrained_like(good)
    version, promoted = reg.save(worse, min_users=50)
    gate = reg.manifest(version)["gate"]
    assert not promoted and reg.current() == first
    assert gate["rule"] == "shared-holdout" and gate["current_version"] == first
    assert gate["candidate_ndcg@10"] < gate["current_ndcg@10"]
    assert gate["interval95"][1] < 0 and "worse beyond the noise" in gate["reason"]
    assert gate["holdout_users"] == 100 and gate["holdout_targets"] == len(good.holdout or ())
    # the serving model's score on the shared holdout is what the candidate reported for itself
    assert gate["current_ndcg@10"] == pytest.approx(good.metrics["ndcg@10"])
    again, promoted = reg.save(good, min_users=50)  # the same model again: equal, so promoted
    gate = reg.manifest(again)["gate"]
    assert promoted and reg.current() == again
    assert gate["difference"] == pytest.approx(0.0) and gate["interval95"] == pytest.approx([0.0, 0.0])
    assert gate["current_saw_holdout"] is False  # trained before the cut: the holdout was fresh for it


def test_gate_accepts_a_better_candidate(good, tmp_path):
    reg = Registry(tmp_path)
    reg.save(untrained_like(good))  # the first model is always promoted
    version, promoted = reg.save(good, min_users=50)
    gate = reg.manifest(version)["gate"]
    assert promoted and gate["interval95"][0] > 0 and "better" in gate["reason"]
    assert [r["gate"]["promote"] for r in reg.list()] == [True, True]


def test_gate_keeps_the_serving_model_when_the_holdout_is_too_small(good, tmp_path):
    reg = Registry(tmp_path)
    reg.save(untrained_like(good))
    version, promoted = reg.save(good, min_users=1000)
    assert not promoted and "fewer than the 1000" in reg.manifest(version)["gate"]["reason"]


def test_compare_is_paired_by_user():
    rng = np.random.default_rng(0)
    users = [f"u{i % 300}" for i in range(900)]
    base = rng.random(900)
    noisy = np.clip(base + rng.normal(0, 0.05, 900), 0, 1)
    assert compare(users, noisy, base)["promote"]  # within noise: not worse
    assert not compare(users, base - 0.1, base)["promote"]
    assert compare(users, base - 0.1, base, tolerance=0.2)["promote"]  # a stated tolerance widens it
    with pytest.raises(ValueError, match="rows"):
        compare(users[:5], base, base)


def test_fresh_holdout_starts_after_the_serving_models_data():
    evs = check_events(chain_events(n_users=20, length=10))
    cfg = TrainConfig(**TINY)
    plain = split(evs, cfg)
    late = evs[int(len(evs) * 0.95)].ts
    fresh = split(evs, cfg, fresh_after=late)
    assert fresh.cutoff > late >= plain.cutoff and fresh.holdout.from_ts > late
    assert len(fresh.holdout) < len(plain.holdout)
    assert split(evs, cfg, fresh_after=0.0).cutoff == plain.cutoff  # an older model: the usual cut
    with pytest.raises(ValueError, match="no event is newer"):
        split(evs, cfg, fresh_after=evs[-1].ts)
