"""Training and holdout evaluation of the deep model on real torch (CPU, a few seconds)."""

from __future__ import annotations

import csv
import json
import math
import os
import random
from pathlib import Path

import pytest
import torch

from models.base import Interaction, UserContext
from models.deep.registry import Registry
from models.deep.train import TrainConfig, main, read_jsonl_events, train
from tests.paths import ROOT, shared_data_dir

torch.set_num_threads(2)

N_ITEMS = 50


def chain_events(n_users: int = 150, length: int = 20, seed: int = 0) -> list[Interaction]:
    """Each user walks i -> i+1 (mod N_ITEMS) from a random start; times interleave users."""
    rng = random.Random(seed)
    out = []
    for u in range(n_users):
        start = rng.randrange(N_ITEMS)
        for t in range(length):
            out.append(Interaction(f"u{u}", f"i{(start + t) % N_ITEMS}", "click", float(t * 1000 + u)))
    return out


def write_jsonl(path: Path, events: list[Interaction]) -> None:
    """Write interactions as contract events, one JSON object per line (the trainer's input)."""
    with open(path, "w") as fh:
        for n, ev in enumerate(events):
            fh.write(json.dumps({"event_id": f"e{n}", "user_id": ev.user_id, "item_id": ev.item_id,
                                 "type": ev.type, "ts": ev.ts}) + "\n")


TINY = dict(dim=32, layers=1, heads=2, max_len=12, epochs=8, batch_size=32, lr=5e-3, dropout=0.0,
            weight_decay=0.0, negatives=20, holdout_fraction=0.1, window_stride=0, seed=1, patience=0,
            refit_full=False)
"""A fixed number of epochs on the time split only (early stopping and the refit are tested on their own)."""


@pytest.fixture(scope="module")
def chain_result():
    return train(chain_events(), TrainConfig(**TINY), device="cpu", progress=False)


def test_learns_planted_pattern(chain_result):
    m = chain_result.metrics
    # random ranking of 50 items hits 10/50 = 0.2 at most; the chain makes the next item certain
    assert m["holdout_users"] == 150
    # every event after the cut is a target (the last 10% of 3000 events), not one per user
    assert m["holdout_targets"] == 300
    assert m["hr@10"] > 0.8, m
    assert m["ndcg@10"] > 0.5, m
    assert len(chain_result.epoch_seconds) == TINY["epochs"]
    assert chain_result.history[-1]["loss"] < chain_result.history[0]["loss"]
    rec = chain_result.recommender("v1")
    top = rec.rank(UserContext("x", recent_items=("i7", "i8", "i9")), k=1)
    assert top[0][0] == "i10"


def test_training_is_deterministic(chain_result):
    again = train(chain_events(), TrainConfig(**TINY), device="cpu", progress=False)
    assert again.metrics["ndcg@10"] == pytest.approx(chain_result.metrics["ndcg@10"], abs=1e-9)
    for a, b in zip(again.model.state_dict().values(), chain_result.model.state_dict().values()):
        assert torch.equal(a, b)


def test_full_softmax_also_learns():
    cfg = TrainConfig(**{**TINY, "negatives": 0, "epochs": 5})
    res = train(chain_events(n_users=80), cfg, device="cpu", progress=False)
    assert res.metrics["hr@10"] > 0.6, res.metrics


def test_early_stopping_keeps_the_best_epoch():
    cfg = TrainConfig(**{**TINY, "epochs": 12, "patience": 2})
    res = train(chain_events(n_users=80), cfg, device="cpu", progress=False)
    best = int(res.metrics["best_epoch"])
    assert 1 <= best <= len(res.epoch_seconds) <= 12
    scores = [h["ndcg@10"] for h in res.history]  # the per-user validation, after every epoch
    assert res.metrics["validation_ndcg@10"] == pytest.approx(max(scores))
    assert scores[best - 1] == max(scores)
    if len(res.epoch_seconds) < 12:  # stopped early: the last `patience` epochs were no better
        assert len(res.epoch_seconds) - best == 2
    # the returned weights are the best epoch's: evaluating them again gives the same score
    from models.deep.data import check_events, split, validation
    from models.deep.holdout import evaluate
    _, val = validation(split(check_events(chain_events(n_users=80)), cfg).train_users, cfg)
    again = evaluate(res.model, val, bool(res.config.exclude_seen))
    assert again["ndcg@10"] == pytest.approx(res.metrics["validation_ndcg@10"], abs=1e-9)


def test_refit_full_knows_items_first_seen_after_the_cut():
    events = chain_events(n_users=60, length=12)
    late = max(e.ts for e in events) + 1.0
    events += [Interaction(f"u{u}", "brand-new", "click", late + u) for u in range(10)]
    cfg = TrainConfig(**{**TINY, "epochs": 3, "patience": 1, "refit_full": True})
    res = train(events, cfg, device="cpu", progress=False)
    assert "brand-new" in res.vocab and res.model.n_items == N_ITEMS + 1
    assert res.metrics["refit_epochs"] == res.metrics["best_epoch"]
    assert res.data_end_ts == max(e.ts for e in events)  # the served model saw every event
    assert sum(1 for h in res.history if h.get("refit")) == int(res.metrics["refit_epochs"])
    plain = train(events, TrainConfig(**{**TINY, "epochs": 3}), device="cpu", progress=False)
    assert "brand-new" not in plain.vocab
    rec = res.recommender("v", exclude_history=True)
    rec.check()
    assert "i3" not in dict(rec.rank(UserContext("x", recent_items=("i1", "i2", "i3")), k=N_ITEMS))


def test_overlapping_windows():
    from models.deep.data import windows

    seq = list(range(1, 13))  # 12 items
    inp, out = windows([seq], max_len=5, stride=0)
    assert out.tolist() == [[8, 9, 10, 11, 12], [3, 4, 5, 6, 7], [1, 2, 0, 0, 0]]
    assert inp.tolist()[0] == [0, 8, 9, 10, 11]
    inp, out = windows([seq], max_len=5, stride=2)
    # windows end every 2 items; the one that reaches the start is the last (prefixes add nothing)
    assert out.tolist() == [[8, 9, 10, 11, 12], [6, 7, 8, 9, 10], [4, 5, 6, 7, 8], [2, 3, 4, 5, 6],
                            [1, 2, 3, 4, 0]]
    assert inp.tolist()[-1] == [0, 1, 2, 3, 0]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no events"):
        train([], TrainConfig(**TINY), device="cpu", progress=False)
    with pytest.raises(TypeError, match="Interaction"):
        train([{"user_id": "u"}], TrainConfig(**TINY), device="cpu", progress=False)
    with pytest.raises(ValueError, match="holdout_fraction"):
        TrainConfig(holdout_fraction=0.0)
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=-1)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)
    with pytest.raises(ValueError, match="unknown training config"):
        TrainConfig.from_dict({"dim": 8, "bogus": 1})


def shared_data() -> Path:
    env = os.environ.get("STREAMREC_SHARED_DATA")
    return Path(env) if env else shared_data_dir()


def test_short_training_on_movielens_is_finite():
    path = shared_data() / "movielens-latest-small" / "ratings.csv"
    if not path.exists():
        pytest.skip(f"MovieLens sample not found at {path} (set STREAMREC_SHARED_DATA)")
    with open(path, newline="") as fh:
        rows = [r for _, r in zip(range(5000), csv.DictReader(fh))]
    events = [Interaction(r["userId"], r["movieId"], "click", float(r["timestamp"])) for r in rows]
    cfg = TrainConfig(dim=32, layers=1, heads=2, max_len=30, epochs=2, batch_size=64, negatives=64, seed=0,
                      patience=0, refit_full=False)
    res = train(events, cfg, device="cpu", progress=False)
    assert res.metrics["holdout_users"] > 0
    for key in ("hr@10", "ndcg@10"):
        assert math.isfinite(res.metrics[key]) and 0.0 <= res.metrics[key] <= 1.0
    assert res.metrics["ndcg@10"] <= res.metrics["hr@10"]
    res.recommender().check([UserContext("1", recent_items=tuple(r["movieId"] for r in rows[:20]))])


def test_main_trains_and_saves(tmp_path):
    events = tmp_path / "events.jsonl"
    write_jsonl(events, chain_events(n_users=40, length=10))
    reg = tmp_path / "registry"
    assert main(["--events", str(events), "--registry", str(reg), "--epochs", "1", "--dim", "16",
                 "--layers", "1", "--max-len", "8", "--device", "cpu", "--quiet"]) == 0
    version = Registry(reg).current()
    assert version is not None
    assert Registry(reg).manifest(version)["config"]["dim"] == 16
    # a bad line is named, not skipped
    with open(events, "a") as fh:
        fh.write('{"event_id": "bad", "user_id": "u1"}\n')
    with pytest.raises(ValueError, match=r"events.jsonl:401: invalid event"):
        read_jsonl_events(events)
    assert main(["--events", str(events), "--registry", str(reg), "--device", "cpu", "--quiet"]) == 2


def test_torchrun_two_processes_write_one_version(tmp_path):
    """DistributedDataParallel on CPU (gloo) under torchrun; only rank 0 writes an artifact."""
    import subprocess
    import sys

    events = tmp_path / "events.jsonl"
    write_jsonl(events, chain_events(n_users=40, length=10))
    reg = tmp_path / "registry"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "models.deep.train", "--events", str(events), "--registry", str(reg), "--epochs", "2",
           "--dim", "16", "--layers", "1", "--max-len", "8", "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = ROOT
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(Registry(reg).list()) == 1
    assert Registry(reg).load(Registry(reg).current()).version == Registry(reg).current()
