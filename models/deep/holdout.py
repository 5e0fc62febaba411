"""Splitting an event log for training and holdout evaluation, and scoring the holdout.

The cut is the event-time quantile ``1 - holdout_fraction``: events before it train the model,
and every event after it is a target, predicted from everything its user did before it. See
:mod:`models.deep.train` for how the split is used.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from models.base import Interaction
from models.deep.model import SequenceModel, Vocabulary, collapse_repeats, encode_batch

if TYPE_CHECKING:
    from models.deep.train import TrainConfig

@dataclass
class _Split:
    vocab: Vocabulary
    train_seqs: list[list[int]]
    eval_hist: list[list[int]]
    """What the model reads for each target: the user's last ``max_len - 1`` known items."""
    eval_seen: list[list[int]]
    """Every known item the user touched before each target (excluded when ``exclude_seen``)."""
    eval_target: list[int]  # 0 = item outside the vocabulary (always a miss)
    cutoff: float
    n_events: int
    holdout_users: int


def _check_events(events: Iterable[Interaction]) -> list[Interaction]:
    evs = list(events)
    if not evs:
        raise ValueError("no events to train on")
    for ev in evs:
        if not isinstance(ev, Interaction):
            raise TypeError(f"expected models.base.Interaction, got {type(ev).__name__}")
        if not math.isfinite(ev.ts):
            raise ValueError(f"event of user {ev.user_id!r} has a non-finite ts")
    evs.sort(key=lambda e: e.ts)  # stable: equal times keep log order
    return evs


def _sequences(evs: Sequence[Interaction], cfg: TrainConfig) -> tuple[Vocabulary, dict[str, list[int]]]:
    """The vocabulary of ``evs`` (most frequent first) and each user's encoded item sequence."""
    counts = Counter(e.item_id for e in evs)
    items = sorted((i for i, c in counts.items() if c >= cfg.min_item_count), key=lambda i: (-counts[i], i))
    if not items:
        raise ValueError("no item reaches min_item_count in the training part")
    vocab = Vocabulary(items)
    per_user: dict[str, list[str]] = {}
    for e in evs:
        per_user.setdefault(e.user_id, []).append(e.item_id)
    prep = collapse_repeats if cfg.collapse_repeats else list
    return vocab, {u: prep(vocab.encode(s)) for u, s in per_user.items()}


def _split(evs: Sequence[Interaction], cfg: TrainConfig) -> _Split:
    """Time split: events before the cut train; every event after it is a holdout target.

    A target's history is everything its user did before it (training part and earlier holdout
    events), the way the model is used between two retrainings.
    """
    cut_at = min(len(evs) - 1, int(len(evs) * (1.0 - cfg.holdout_fraction)))
    cutoff = evs[cut_at].ts
    n_train = bisect.bisect_left([e.ts for e in evs], cutoff)
    if n_train == 0:
        raise ValueError("the training part before the holdout cut is empty; lower holdout_fraction")
    vocab, train_seqs = _sequences(evs[:n_train], cfg)
    later = evs[n_train:]
    users = sorted({e.user_id for e in later})
    if len(users) > cfg.max_eval_users:
        rng = np.random.default_rng(cfg.seed)
        users = [users[i] for i in rng.choice(len(users), cfg.max_eval_users, replace=False)]
    keep = set(users)
    so_far = {u: list(train_seqs.get(u, ())) for u in keep}
    hist, seen, target = [], [], []
    seen_sets: dict[str, set[int]] = {u: set(h) for u, h in so_far.items()}
    for e in later:
        if e.user_id not in keep:
            continue
        h = so_far[e.user_id]
        j = vocab.index.get(e.item_id, 0)
        if cfg.collapse_repeats and j and h and h[-1] == j:
            continue  # a repeat of the item just touched is no new target
        hist.append(h[-(cfg.max_len - 1):])
        seen.append(list(seen_sets[e.user_id]) if cfg.exclude_seen else [])
        target.append(j)
        if j:
            h.append(j)
            seen_sets[e.user_id].add(j)
    if len(target) > cfg.max_eval_targets:
        pick = np.sort(np.random.default_rng(cfg.seed + 1).choice(len(target), cfg.max_eval_targets, replace=False))
        hist, seen, target = [hist[i] for i in pick], [seen[i] for i in pick], [target[i] for i in pick]
    seqs = [s for s in train_seqs.values() if s]
    return _Split(vocab, seqs, hist, seen, target, cutoff, len(evs), len(keep))


def _windows(seqs: Sequence[list[int]], max_len: int, stride: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[BOS, s_a .. s_{a+L-2}]`` and targets ``s_a .. s_{a+L-1}``, windows from the end.

    Windows end every ``stride`` items (0: every ``max_len``, no overlap); overlapping windows
    show an item after several context lengths and give small logs enough training steps.
    """
    step = stride if 0 < stride < max_len else max_len
    rows_in, rows_out = [], []
    for s in seqs:
        end = len(s)
        while end > 0:
            start = max(0, end - max_len)
            tgt = s[start:end]
            inp = [0] + tgt[:-1]
            pad = [0] * (max_len - len(tgt))
            rows_in.append(inp + pad)
            rows_out.append(tgt + pad)
            end = 0 if start == 0 else end - step
    return torch.tensor(rows_in, dtype=torch.long), torch.tensor(rows_out, dtype=torch.long)


def evaluate(model: SequenceModel, split: _Split, exclude_seen: bool = True, k: int = 10,
             batch_size: int = 512, device: str = "cpu") -> dict[str, float]:
    """Holdout HR@k and NDCG@k of ``model`` (full ranking over the catalogue, one row per target)."""
    was_training = model.training
    model.eval()
    hits, gain, n = 0, 0.0, len(split.eval_target)
    items = model.item_matrix()
    try:
        for start in range(0, n, batch_size):
            hist = split.eval_hist[start:start + batch_size]
            seen = split.eval_seen[start:start + batch_size]
            seqs, last = encode_batch(hist, model.max_len)
            seqs, last = seqs[:, : int(last.max()) + 1].to(device), last.to(device)
            scores = model(seqs)[torch.arange(len(hist), device=device), last] @ items.T
            if exclude_seen:
                rows = [r for r, s in enumerate(seen) for _ in s]
                if rows:
                    scores[rows, [j - 1 for s in seen for j in s]] = float("-inf")
            tgts = split.eval_target[start:start + batch_size]
            tgt_idx = torch.tensor([max(t - 1, 0) for t in tgts], device=device)
            tgt_score = scores[torch.arange(len(tgts), device=device), tgt_idx]
            # rank = items scoring strictly higher (ties count in the target's favour, as topk may)
            ranks = (scores > tgt_score.unsqueeze(1)).sum(1).cpu().tolist()
            for row, (tgt, r) in enumerate(zip(tgts, ranks)):
                if not tgt or r >= k or (exclude_seen and tgt in seen[row]):
                    continue
                hits += 1
                gain += 1.0 / math.log2(r + 2)
    finally:
        model.train(was_training)
    return {f"hr@{k}": hits / n if n else float("nan"), f"ndcg@{k}": gain / n if n else float("nan"),
            "holdout_targets": float(n)}
