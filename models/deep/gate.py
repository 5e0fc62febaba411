"""The promotion gate: a candidate and the serving model scored on the same fresh holdout.

The trainer keeps the newest events out of the run that chooses the model (the fresh holdout,
:class:`models.deep.data.Holdout`, kept as item ids) and scores its candidate on them with
:func:`target_gains`; :meth:`models.deep.registry.Registry.save` scores the serving model on the
*same* rows with the same function and asks :func:`compare` whether the candidate is worse
beyond the noise of that holdout. Each row is ranked as the worker ranks: against the model's
whole vocabulary, never the item just touched, never an already seen item where the holdout
says so (rating data); the gain of a row is its NDCG@10 (0 when the target is missed or unknown
to the model).

The noise is measured by a paired bootstrap over users (a user's rows are resampled together,
since one user's targets are not independent): the statistic is the mean NDCG@10 difference per
row, candidate minus current, and the candidate is refused when the upper end of its 95%
interval is below ``-tolerance``, or when the holdout has fewer than ``min_users`` users (too few
to tell; :data:`MIN_USERS` by default). With 200 users the interval of a typical NDCG@10
difference is about +-0.02 wide on each side; every decision records its interval.

>>> import numpy as np
>>> users = [f"u{i % 50}" for i in range(200)]
>>> same = np.linspace(0, 1, 200)
>>> compare(users, same, same, tolerance=0.0, min_users=20)["promote"]
True
>>> compare(users, same * 0.5, same, tolerance=0.0, min_users=20)["reason"]
'the candidate is worse beyond the noise of the holdout'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from models.base import UserContext
from models.deep.data import Holdout
from models.deep.model import DeepRecommender

MIN_USERS = 200
"""Fewest holdout users the gate decides on (fewer: the serving model stays)."""
RESAMPLES = 2000
K = 10


@torch.inference_mode()
def target_gains(rec: DeepRecommender, holdout: Holdout, k: int = K, batch_size: int = 256) -> NDArray[np.float64]:
    """NDCG@k of every holdout row for ``rec`` (full ranking over its vocabulary, worker exclusions)."""
    gains = np.zeros(len(holdout), np.float64)
    index = rec.vocab.index
    for start in range(0, len(holdout), batch_size):
        stop = min(start + batch_size, len(holdout))
        users = [UserContext(holdout.users[i], recent_items=holdout.history[i]) for i in range(start, stop)]
        scores = rec.score_all(users)
        rows: list[int] = []
        cols: list[int] = []
        for r, i in enumerate(range(start, stop)):
            hist = holdout.history[i]
            excluded = set(holdout.seen[i]) if holdout.exclude_seen else set()
            if hist:
                excluded.add(hist[-1])  # the item just touched is never recommended
            for item in excluded:
                j = index.get(item)
                if j is not None:
                    rows.append(r)
                    cols.append(j - 1)
        if rows:
            scores[rows, cols] = float("-inf")
        for r, i in enumerate(range(start, stop)):
            j = index.get(holdout.target[i])
            if j is None:
                continue
            tgt = scores[r, j - 1]
            if not bool(torch.isfinite(tgt)):
                continue  # the target is excluded: the worker could not show it
            rank = int((scores[r] > tgt).sum())
            if rank < k:
                gains[i] = 1.0 / math.log2(rank + 2)
    return gains


def _bootstrap(counts: NDArray[np.float64], diffs: NDArray[np.float64], resamples: int, seed: int,
               ) -> tuple[float, float]:
    """95% percentile interval of ``sum(diffs) / sum(counts)`` with users resampled (in chunks)."""
    rng = np.random.default_rng(seed)
    n = len(counts)
    stats: list[NDArray[np.float64]] = []
    chunk = max(1, min(resamples, 2_000_000 // max(n, 1)))
    done = 0
    while done < resamples:
        m = min(chunk, resamples - done)
        pick = rng.integers(0, n, size=(m, n))
        stats.append(diffs[pick].sum(axis=1) / counts[pick].sum(axis=1))
        done += m
    lo, hi = np.percentile(np.concatenate(stats), [2.5, 97.5])
    return float(lo), float(hi)


def compare(users: Sequence[str], candidate: NDArray[np.float64], current: NDArray[np.float64],
            tolerance: float = 0.0, min_users: int = MIN_USERS, resamples: int = RESAMPLES,
            seed: int = 0) -> dict[str, Any]:
    """The gate's decision for per-row gains of two models on the same holdout rows of ``users``."""
    cand = np.asarray(candidate, np.float64)
    cur = np.asarray(current, np.float64)
    if cand.shape != cur.shape or len(cand) != len(users):
        raise ValueError(f"gains of {len(cand)} and {len(cur)} rows for {len(users)} holdout rows")
    if not len(cand):
        return {"promote": False, "reason": "the holdout is empty", "holdout_users": 0, "holdout_targets": 0}
    _, inverse = np.unique(np.asarray(users), return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)
    diffs = np.bincount(inverse, weights=cand - cur).astype(np.float64)
    n_users = len(counts)
    out: dict[str, Any] = {
        "candidate_ndcg@10": float(cand.mean()), "current_ndcg@10": float(cur.mean()),
        "difference": float((cand - cur).mean()), "holdout_users": n_users, "holdout_targets": len(cand),
        "tolerance": tolerance, "min_users": min_users, "resamples": resamples,
        "test": "paired per-user bootstrap, 95% percentile interval of the mean NDCG@10 difference per row",
    }
    lo, hi = _bootstrap(counts, diffs, resamples, seed) if n_users > 1 else (out["difference"],) * 2
    out["interval95"] = [lo, hi]
    if n_users < min_users:
        out.update(promote=False, reason=f"the holdout has {n_users} users, fewer than the {min_users} needed to tell")
    elif hi < -tolerance:
        out.update(promote=False, reason="the candidate is worse beyond the noise of the holdout")
    elif lo > 0:
        out.update(promote=True, reason="the candidate is better beyond the noise of the holdout")
    else:
        out.update(promote=True, reason="the candidate is not worse beyond the noise of the holdout")
    return out
