"""Preparing an event log for the deep sequence model: checks, sequences, time split, windows.

Used by training (:mod:`models.deep.train`) and holdout scoring (:mod:`models.deep.holdout`), so
both read the same split. The cut is the event-time quantile ``1 - holdout_fraction``: events
before it train the model, and every event after it is a target, predicted from everything its
user did before it.

>>> from models.base import Interaction
>>> evs = check_events([Interaction("u", item, "click", float(t)) for t, item in enumerate("abcab")])
>>> vocab, seqs = sequences(evs, TrainConfig())
>>> vocab.items, seqs
(['a', 'b', 'c'], {'u': [1, 2, 3, 1, 2]})
>>> inputs, targets = windows([[1, 2, 3]], max_len=4)
>>> inputs.tolist(), targets.tolist()
([[0, 1, 2, 0]], [[1, 2, 3, 0]])
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.base import Interaction
from models.deep.config import TrainConfig
from models.deep.model import Vocabulary, collapse_repeats


@dataclass
class Split:
    """A time split of an event log: training sequences and one row per holdout target."""

    vocab: Vocabulary
    train_seqs: list[list[int]]
    eval_hist: list[list[int]]
    """What the model reads for each target: the user's last ``max_len - 1`` known items."""
    eval_seen: list[list[int]]
    """Every known item the user touched before each target (excluded when ``exclude_seen``)."""
    eval_target: list[int]
    """Vocabulary index of each target; 0 = an item outside the vocabulary (always a miss)."""
    cutoff: float
    n_events: int
    holdout_users: int


def check_events(events: Iterable[Interaction]) -> list[Interaction]:
    """The events sorted by time (stably); a clear error for an empty log or a malformed event."""
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


def sequences(evs: Sequence[Interaction], cfg: TrainConfig) -> tuple[Vocabulary, dict[str, list[int]]]:
    """The vocabulary of ``evs`` (most frequent first) and each user's encoded item sequence."""
    counts = Counter(e.item_id for e in evs)
    items = sorted((i for i, c in counts.items() if c >= cfg.min_item_count), key=lambda i: (-counts[i], i))
    if not items:
        raise ValueError("no item reaches min_item_count in the training part")
    vocab = Vocabulary(items)
    per_user: dict[str, list[str]] = {}
    for e in evs:
        per_user.setdefault(e.user_id, []).append(e.item_id)
    prep: Callable[[list[int]], list[int]] = collapse_repeats if cfg.collapse_repeats else list
    return vocab, {u: prep(vocab.encode(s)) for u, s in per_user.items()}


def split(evs: Sequence[Interaction], cfg: TrainConfig) -> Split:
    """Time split: events before the cut train; every event after it is a holdout target.

    A target's history is everything its user did before it (training part and earlier holdout
    events), the way the model is used between two retrainings.
    """
    cut_at = min(len(evs) - 1, int(len(evs) * (1.0 - cfg.holdout_fraction)))
    cutoff = evs[cut_at].ts
    n_train = bisect.bisect_left([e.ts for e in evs], cutoff)
    if n_train == 0:
        raise ValueError("the training part before the holdout cut is empty; lower holdout_fraction")
    vocab, train_seqs = sequences(evs[:n_train], cfg)
    later = evs[n_train:]
    users = sorted({e.user_id for e in later})
    if len(users) > cfg.max_eval_users:
        rng = np.random.default_rng(cfg.seed)
        users = [users[i] for i in rng.choice(len(users), cfg.max_eval_users, replace=False)]
    keep = set(users)
    hist, seen, target = _targets(later, keep, train_seqs, vocab, cfg)
    if len(target) > cfg.max_eval_targets:
        pick = np.sort(np.random.default_rng(cfg.seed + 1).choice(len(target), cfg.max_eval_targets, replace=False))
        hist, seen, target = [hist[i] for i in pick], [seen[i] for i in pick], [target[i] for i in pick]
    seqs = [s for s in train_seqs.values() if s]
    return Split(vocab, seqs, hist, seen, target, cutoff, len(evs), len(keep))


def _targets(
    later: Sequence[Interaction], keep: set[str], train_seqs: dict[str, list[int]], vocab: Vocabulary,
    cfg: TrainConfig,
) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """(history, seen items, target) of every holdout event of the users in ``keep``."""
    so_far = {u: list(train_seqs.get(u, ())) for u in keep}
    hist: list[list[int]] = []
    seen: list[list[int]] = []
    target: list[int] = []
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
    return hist, seen, target


def windows(seqs: Sequence[list[int]], max_len: int, stride: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[BOS, s_a .. s_{a+L-2}]`` and targets ``s_a .. s_{a+L-1}``, windows from the end.

    Windows end every ``stride`` items (0: every ``max_len``, no overlap); overlapping windows
    show an item after several context lengths and give small logs enough training steps.
    """
    step = stride if 0 < stride < max_len else max_len
    rows_in: list[list[int]] = []
    rows_out: list[list[int]] = []
    for s in seqs:
        end = len(s)
        while end > 0:
            start = max(0, end - max_len)
            tgt = s[start:end]
            inp = [0, *tgt[:-1]]
            pad = [0] * (max_len - len(tgt))
            rows_in.append(inp + pad)
            rows_out.append(tgt + pad)
            end = 0 if start == 0 else end - step
    return torch.tensor(rows_in, dtype=torch.long), torch.tensor(rows_out, dtype=torch.long)
