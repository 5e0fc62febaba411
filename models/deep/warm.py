"""Warm-started retraining: the next deep model starts from the one being served.

A retraining from scratch reads every event for many epochs; between two retrainings only the
newest events are news. :func:`warm_train` continues the serving model instead:

1. the vocabulary is rebuilt from every event; the previous model's weights are copied and its
   item table **grows** (:func:`grow`): a known item keeps its vector, an item that appeared
   since starts from the mean vector of the known items next to it in users' sequences (its
   co-occurrence neighbours), or from a random vector of the table's scale when it has none;
2. it trains a few epochs (``epochs``, default :data:`WARM_EPOCHS`) on the **recent** part of
   the log: the sequence tail of every user with events newer than the previous model's data
   (those events plus ``max_len - 1`` items of context), mixed with an equal number of older
   users' tails drawn at random so the model does not forget the rest of the catalogue;
3. with ``score`` (what ``streamrec train`` does), steps 1-2 first stop at the fresh-holdout
   cut and the model is scored there, the candidate's side of the promotion gate; training
   then goes on over the holdout's events, so the model served knows the newest items.

The model's shape (``dim``, ``layers``, ``heads``, ``max_len``) is the previous model's; its
training settings (dropout, weight decay, learning rate) are the previous run's resolved
config. The cost is proportional to the recent events, not to the whole log.

>>> from models.base import Interaction
>>> from models.deep.train import TrainConfig, train
>>> def log(n_users, start=0):
...     return [Interaction(f"u{u}", f"i{(u + t) % 9}", "click", float(start + t * 100 + u))
...             for u in range(n_users) for t in range(10)]
>>> cfg = TrainConfig(dim=16, layers=1, heads=1, max_len=8, epochs=2, patience=0, batch_size=16)
>>> first = train(log(20), cfg, device="cpu", progress=False)
>>> more = log(20) + [Interaction("u1", "new", "click", 5000.0), Interaction("u2", "new", "click", 5001.0)]
>>> warm = warm_train(more, Start.of(first), device="cpu", progress=False)
>>> "new" in warm.vocab, warm.metrics["warm_start"], warm.metrics["new_items"]
(True, 1.0, 1.0)
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.base import Interaction
from models.deep.config import TrainConfig
from models.deep.data import check_events, repeat_rate, sequences, split
from models.deep.device import pick_device
from models.deep.gate import target_gains
from models.deep.model import PAD, DeepRecommender, SequenceModel, Vocabulary
from models.deep.serving import serving_plan
from models.deep.train import TrainResult, fit

WARM_EPOCHS = 2
"""Epochs over the recent part of the log per warm retraining."""


@dataclass(frozen=True)
class Start:
    """What a warm retraining continues: the serving model, its vocabulary and training settings."""

    model: SequenceModel
    vocab: Vocabulary
    config: TrainConfig
    data_end_ts: float | None
    """The newest event time the model was trained on (recent events are those after it)."""

    @classmethod
    def of(cls, result: TrainResult) -> Start:
        """Continue from a training run's result."""
        return cls(result.model, result.vocab, result.config, result.data_end_ts)

    @classmethod
    def of_artifact(cls, rec: DeepRecommender, manifest: dict[str, Any]) -> Start:
        """Continue from a registry version (its loaded model and its manifest)."""
        raw = manifest.get("config")
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        try:  # an older manifest may hold settings that are gone: the rest still apply
            cfg = TrainConfig.from_dict({k: v for k, v in raw.items() if k in known}) if isinstance(raw, dict) \
                else TrainConfig()
        except (TypeError, ValueError):
            cfg = TrainConfig()
        end = manifest.get("data_end_ts")
        return cls(rec.model, rec.vocab, cfg, float(end) if isinstance(end, (int, float)) else None)


def _neighbour_sums(seqs: Iterable[list[int]], known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every adjacent pair of ``seqs`` with one new item (``known[j] < 0``) and one known item.

    Returns two aligned arrays: the new item's index and the known item's row in the old table.
    """
    left = np.fromiter((a for s in seqs for a in s[:-1]), np.int64)
    right = np.fromiter((b for s in seqs for b in s[1:]), np.int64)
    if not len(left):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    kl, kr = known[left], known[right]
    a = (kl < 0) & (kr >= 0)  # new item, then a known one
    b = (kr < 0) & (kl >= 0)
    return np.concatenate([left[a], right[b]]), np.concatenate([kr[a], kl[b]])


def grow(prev: SequenceModel, prev_vocab: Vocabulary, vocab: Vocabulary, seqs: Sequence[list[int]],
         dropout: float, dev: torch.device, seed: int = 0) -> tuple[SequenceModel, int]:
    """A model over ``vocab`` with ``prev``'s weights; new items start from their neighbours.

    ``seqs`` are sequences encoded with ``vocab`` (where neighbours are read). Returns the model
    and the number of new items.

    >>> old = SequenceModel(n_items=2, dim=8, layers=1, heads=1, max_len=4)
    >>> new, n_new = grow(old, Vocabulary(["a", "b"]), Vocabulary(["b", "c", "a"]), [[1, 2]], 0.0, torch.device("cpu"))
    >>> n_new, bool(torch.equal(new.item_emb.weight[1], old.item_emb.weight[2]))  # "b" kept its vector
    (1, True)
    >>> bool(torch.allclose(new.item_emb.weight[2], old.item_emb.weight[2]))  # "c" starts from "b"
    True
    """
    shape = prev.config()
    model = SequenceModel(len(vocab), shape["dim"], shape["layers"], shape["heads"], shape["max_len"], dropout)
    old_w = prev.item_emb.weight.detach().to("cpu")
    known = np.full(len(vocab) + 1, -1, np.int64)
    for item, j in vocab.index.items():
        old = prev_vocab.index.get(item)
        if old is not None:
            known[j] = old
    known[PAD] = PAD
    new_w = torch.empty(len(vocab) + 1, shape["dim"])
    gen = torch.Generator().manual_seed(seed)
    scale = float(old_w[1:].std()) if len(prev_vocab) > 1 else shape["dim"] ** -0.5
    new_w.normal_(0.0, scale if math.isfinite(scale) and scale > 0 else shape["dim"] ** -0.5, generator=gen)
    is_known = torch.from_numpy(known >= 0)
    new_w[is_known] = old_w[torch.from_numpy(known[known >= 0])]
    new_idx, old_rows = _neighbour_sums(seqs, known)
    if len(new_idx):
        sums = torch.zeros_like(new_w).index_add_(0, torch.from_numpy(new_idx), old_w[torch.from_numpy(old_rows)])
        counts = torch.bincount(torch.from_numpy(new_idx), minlength=len(vocab) + 1)
        has = counts > 0
        new_w[has] = sums[has] / counts[has].unsqueeze(1).float()
    new_w[PAD] = 0.0
    model.load_state_dict({**prev.state_dict(), "item_emb.weight": new_w})  # strict: every other weight is prev's
    return model.to(dev), int((known < 0).sum())


def recent_tails(evs: Sequence[Interaction], by_user: dict[str, list[int]], since: float | None, max_len: int,
                 seed: int) -> list[list[int]]:
    """The sequence tails a warm retraining reads: active users' recent items and as many others'.

    An active user has events newer than ``since``; their tail is that many items (at most
    their sequence) plus ``max_len - 1`` of context. Other users' tails of ``max_len`` items
    are drawn at random, as many as there are active users (all of them when fewer).
    """
    if since is None:
        return [s for s in by_user.values() if s]
    new_counts: dict[str, int] = {}
    first_new = bisect.bisect_right([e.ts for e in evs], since)
    for e in evs[first_new:]:
        new_counts[e.user_id] = new_counts.get(e.user_id, 0) + 1
    active = [s[-(n + max_len - 1):] for u, n in new_counts.items() if (s := by_user.get(u))]
    others = [s[-max_len:] for u, s in by_user.items() if s and u not in new_counts]
    if len(others) > len(active):
        pick = np.random.default_rng(seed).choice(len(others), len(active), replace=False)
        others = [others[i] for i in np.sort(pick)]
    return active + others


def _continue(start: Start, evs: Sequence[Interaction], since: float | None, cfg: TrainConfig, epochs: int,
              dev: torch.device, progress: bool) -> tuple[SequenceModel, Vocabulary, list[list[int]], list[float], int]:
    """Grow ``start`` to the vocabulary of ``evs`` and train it on the tails since ``since``."""
    vocab, by_user = sequences(evs, cfg)
    seqs = [s for s in by_user.values() if s]
    model, _ = grow(start.model, start.vocab, vocab, seqs, _dropout(cfg), dev, cfg.seed)
    tails = recent_tails(evs, by_user, since, cfg.max_len, cfg.seed)
    seconds, _, _ = fit(model, tails, cfg, epochs, dev, progress, False, 0)
    return model, vocab, seqs, seconds, len(tails)


def _dropout(cfg: TrainConfig) -> float:
    return cfg.dropout if cfg.dropout is not None else 0.3


def warm_train(events: Iterable[Interaction], start: Start, epochs: int = WARM_EPOCHS, device: str | None = None,
               progress: bool = True, *, score: bool = False, seed: int | None = None) -> TrainResult:
    """Continue ``start`` on ``events`` (the whole log; the recent part is read); see the module doc.

    ``score``: stop at the fresh-holdout cut first and score the model there (the gate's
    candidate metrics), then go on over the holdout. ``seed`` overrides the previous run's.
    """
    if epochs < 1:
        raise ValueError("a warm retraining needs at least one epoch")
    t0 = time.perf_counter()
    shape = start.model.config()  # the shape is the previous model's, whatever the stored config says
    cfg = TrainConfig.from_dict({**start.config.to_dict(), **({} if seed is None else {"seed": seed}),
                                 "dim": shape["dim"], "layers": shape["layers"], "heads": shape["heads"],
                                 "max_len": shape["max_len"], "dropout": _dropout(start.config)})
    torch.manual_seed(cfg.seed)
    dev = pick_device(device, False)
    evs = check_events(events)
    if cfg.weight_decay is None or cfg.exclude_seen is None or cfg.epochs is None:  # a config never resolved
        vocab, by_user = sequences(evs, cfg)
        seqs = [s for s in by_user.values() if s]
        cfg = cfg.resolved(sum(map(len, seqs)), len(vocab), repeat_rate(seqs))
    metrics: dict[str, float] = {"warm_start": 1.0, "events": float(len(evs))}
    holdout = gains = None
    since, known = start.data_end_ts, start.vocab.index
    epoch_seconds: list[float] = []
    if score:
        held = split(evs, cfg, since)
        n_train = bisect.bisect_left([e.ts for e in evs], held.cutoff)
        model, vocab, _, secs, _ = _continue(start, evs[:n_train], since, cfg, epochs, dev, progress)
        epoch_seconds += secs
        holdout = held.holdout
        holdout.exclude_seen = bool(cfg.exclude_seen)
        gains = target_gains(DeepRecommender(model.to("cpu").eval(), vocab, collapse=cfg.collapse_repeats), holdout)
        metrics.update({"hr@10": float((gains > 0).mean()) if len(gains) else math.nan,
                        "ndcg@10": float(gains.mean()) if len(gains) else math.nan,
                        "holdout_targets": float(len(gains)), "holdout_users": float(holdout.user_count),
                        "cutoff_ts": held.cutoff})
        start = Start(model, vocab, cfg, evs[n_train - 1].ts)
        since = start.data_end_ts
    model, vocab, seqs, secs, n_tails = _continue(start, evs, since, cfg, epochs, dev, progress)
    n_new = sum(item not in known for item in vocab.items)  # new to the model this run started from
    epoch_seconds += secs
    serving = serving_plan(vocab, seqs, cfg)
    metrics.update({"items": float(len(vocab)), "new_items": float(n_new), "epochs_trained": float(epochs),
                    "train_sequences": float(n_tails),
                    "pool_size": float(serving["pool_size"]), "pool_coverage": serving["pool_coverage"],
                    "seconds": time.perf_counter() - t0})
    return TrainResult(model.to("cpu").eval(), vocab, cfg, metrics, epoch_seconds, str(dev), [], 0, holdout, gains,
                       serving, evs[-1].ts)
