"""Preparing an event log for the deep sequence model: checks, sequences, splits, windows.

Used by training (:mod:`models.deep.train`), validation and holdout scoring
(:mod:`models.deep.holdout`, :mod:`models.deep.gate`), so all read the same split. Two splits:

* the **fresh holdout** (:func:`split`): the cut is the event-time quantile
  ``1 - holdout_fraction`` (or later, see ``fresh_after``); events before it train the model,
  and every event after it is a target, predicted from everything its user did before it. It is
  kept as item ids too (:class:`Holdout`), so that any model, whatever its vocabulary, can be
  scored on exactly the same targets (the promotion gate);
* the **per-user validation** (:func:`validation`): each user's last ``validation_items``
  training items, predicted from the items before them; early stopping reads it.

>>> from models.base import Interaction
>>> evs = check_events([Interaction("u", item, "click", float(t)) for t, item in enumerate("abcab")])
>>> vocab, seqs = sequences(evs, TrainConfig())
>>> vocab.items, seqs
(['a', 'b', 'c'], {'u': [1, 2, 3, 1, 2]})
>>> train_part, val = validation({'u': [1, 2, 3, 1, 2]}, TrainConfig(), 1)
>>> train_part, val.eval_hist, val.eval_target
([[1, 2, 3, 1]], [[1, 2, 3, 1]], [2])
>>> repeat_rate([[1, 2, 3, 1, 2]])
0.4
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

HISTORY_KEPT = 200
"""Raw items kept per holdout target (any model reads at most its own ``max_len - 1`` known ones)."""


@dataclass
class Targets:
    """Encoded prediction targets: what the model reads, what is excluded, what it should find."""

    eval_hist: list[list[int]]
    """What the model reads for each target: the user's last ``max_len - 1`` known items."""
    eval_seen: list[list[int]]
    """Every known item the user touched before each target (excluded when ``exclude_seen``)."""
    eval_target: list[int]
    """Vocabulary index of each target; 0 = an item outside the vocabulary (always a miss)."""


@dataclass
class Holdout:
    """The fresh holdout as item ids, so models with different vocabularies score the same rows."""

    users: list[str]
    history: list[tuple[str, ...]]
    """The user's items before the target (consecutive repeats collapsed), at most ``HISTORY_KEPT``."""
    seen: list[frozenset[str]]
    """Every item the user touched before the target."""
    target: list[str]
    from_ts: float
    """The holdout's first event time (the cut): its events are newer than the training part."""
    exclude_seen: bool = False
    """Whether already seen items are excluded when ranking (rating data); set by the trainer."""

    def __len__(self) -> int:
        return len(self.target)

    @property
    def user_count(self) -> int:
        return len(set(self.users))


@dataclass
class Split(Targets):
    """A time split of an event log: training sequences and one row per holdout target."""

    vocab: Vocabulary
    train_seqs: list[list[int]]
    train_users: dict[str, list[int]]
    """The training part's encoded sequence of every user (the per-user validation splits it)."""
    holdout: Holdout
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


def split(evs: Sequence[Interaction], cfg: TrainConfig, fresh_after: float | None = None) -> Split:
    """Time split: events before the cut train; every event after it is a holdout target.

    A target's history is everything its user did before it (training part and earlier holdout
    events), the way the model is used between two retrainings. With ``fresh_after`` (the last
    event time the serving model was trained on) the cut is never before the first event newer
    than it, so the holdout is fresh for the serving model too.
    """
    times = [e.ts for e in evs]
    cut_at = min(len(evs) - 1, int(len(evs) * (1.0 - cfg.holdout_fraction)))
    cutoff = evs[cut_at].ts
    if fresh_after is not None and fresh_after >= cutoff:
        after = bisect.bisect_right(times, fresh_after)
        if after >= len(evs):
            raise ValueError("no event is newer than the serving model's training data; nothing fresh to "
                             "score a new model on")
        cutoff = evs[after].ts
    n_train = bisect.bisect_left(times, cutoff)
    if n_train == 0:
        raise ValueError("the training part before the holdout cut is empty; lower holdout_fraction")
    vocab, train_seqs = sequences(evs[:n_train], cfg)
    later = evs[n_train:]
    users = sorted({e.user_id for e in later})
    if len(users) > cfg.max_eval_users:
        rng = np.random.default_rng(cfg.seed)
        users = [users[i] for i in rng.choice(len(users), cfg.max_eval_users, replace=False)]
    keep = set(users)
    hist, seen, target, raw = _targets(evs[:n_train], later, keep, train_seqs, vocab, cfg)
    if len(target) > cfg.max_eval_targets:
        pick = np.sort(np.random.default_rng(cfg.seed + 1).choice(len(target), cfg.max_eval_targets, replace=False))
        hist, seen, target = [hist[i] for i in pick], [seen[i] for i in pick], [target[i] for i in pick]
        raw = Holdout([raw.users[i] for i in pick], [raw.history[i] for i in pick], [raw.seen[i] for i in pick],
                      [raw.target[i] for i in pick], cutoff)
    seqs = [s for s in train_seqs.values() if s]
    return Split(hist, seen, target, vocab, seqs, train_seqs, raw, cutoff, len(evs), len(keep))


def _targets(
    before: Sequence[Interaction], later: Sequence[Interaction], keep: set[str], train_seqs: dict[str, list[int]],
    vocab: Vocabulary, cfg: TrainConfig,
) -> tuple[list[list[int]], list[list[int]], list[int], Holdout]:
    """(history, seen items, target) of every holdout event of the users in ``keep``, encoded and raw."""
    so_far = {u: list(train_seqs.get(u, ())) for u in keep}
    raw_so_far: dict[str, list[str]] = {u: [] for u in keep}
    for e in before:
        r = raw_so_far.get(e.user_id)
        if r is not None and not (cfg.collapse_repeats and r and r[-1] == e.item_id):
            r.append(e.item_id)
    raw_seen = {u: set(r) for u, r in raw_so_far.items()}
    hist: list[list[int]] = []
    seen: list[list[int]] = []
    target: list[int] = []
    raw = Holdout([], [], [], [], later[0].ts if later else math.inf)
    seen_sets: dict[str, set[int]] = {u: set(h) for u, h in so_far.items()}
    for e in later:
        if e.user_id not in keep:
            continue
        h, r = so_far[e.user_id], raw_so_far[e.user_id]
        if cfg.collapse_repeats and r and r[-1] == e.item_id:
            continue  # a repeat of the item just touched is no new target
        j = vocab.index.get(e.item_id, 0)
        hist.append(h[-(cfg.max_len - 1):])
        seen.append(list(seen_sets[e.user_id]))
        target.append(j)
        raw.users.append(e.user_id)
        raw.history.append(tuple(r[-HISTORY_KEPT:]))
        raw.seen.append(frozenset(raw_seen[e.user_id]))
        raw.target.append(e.item_id)
        r.append(e.item_id)
        raw_seen[e.user_id].add(e.item_id)
        if j:
            h.append(j)
            seen_sets[e.user_id].add(j)
    return hist, seen, target, raw


def validation(train_users: dict[str, list[int]], cfg: TrainConfig, max_users: int | None = None,
               ) -> tuple[list[list[int]], Targets]:
    """Per-user validation: each user's last ``cfg.validation_items`` items are targets.

    Returns the sequences to train on (those users' items before their targets, every other
    user's whole sequence) and the targets, each predicted from everything before it. Only users
    with at least ``validation_items + 2`` items give targets (one item stays to learn from);
    with more than ``max_users`` (default ``cfg.max_eval_users``) such users a seeded sample does.
    """
    n = cfg.validation_items
    limit = cfg.max_eval_users if max_users is None else max_users
    eligible = sorted(u for u, s in train_users.items() if len(s) >= n + 2)
    if len(eligible) > limit:
        pick = np.random.default_rng(cfg.seed + 2).choice(len(eligible), limit, replace=False)
        eligible = [eligible[i] for i in np.sort(pick)]
    chosen = set(eligible)
    seqs: list[list[int]] = []
    out = Targets([], [], [])
    for u, s in train_users.items():
        if u not in chosen:
            if s:
                seqs.append(s)
            continue
        seqs.append(s[:-n])
        for i in range(len(s) - n, len(s)):
            out.eval_hist.append(s[:i][-(cfg.max_len - 1):])
            out.eval_seen.append(sorted(set(s[:i])))
            out.eval_target.append(s[i])
    return seqs, out


def repeat_rate(seqs: Iterable[Sequence[int]]) -> float:
    """The share of items in ``seqs`` that the same sequence already held earlier (returns to an item)."""
    total = again = 0
    for s in seqs:
        total += len(s)
        again += len(s) - len(set(s))
    return again / total if total else 0.0


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
