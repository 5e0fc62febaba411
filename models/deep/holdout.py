"""Scoring the deep sequence model on encoded targets (see :mod:`models.deep.data`).

Every target is ranked against the whole catalogue; the score is HR@k and NDCG@k. Early
stopping reads it on the per-user validation targets every epoch; the promotion gate scores
models on the fresh holdout by item ids instead (:mod:`models.deep.gate`).
"""

from __future__ import annotations

import math

import torch

from models.deep.data import Targets
from models.deep.model import SequenceModel, encode_batch


def evaluate(model: SequenceModel, split: Targets, exclude_seen: bool = True, k: int = 10,
             batch_size: int = 512, device: str = "cpu") -> dict[str, float]:
    """HR@k and NDCG@k of ``model`` on the targets (full ranking over the catalogue, one row per target)."""
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
