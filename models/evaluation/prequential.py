"""Prequential (test-then-train) evaluation of several systems side by side in one replay.

For every event, in time order, each system first ranks for the user's context *before* the
event (``k = 20``, excluding the user's purchased items, or every item the user has touched
with ``exclude="seen"``); the event's item is the target for HR@10, NDCG@10 and MRR@20
(:mod:`models.evaluation.metrics`). Then every system learns the event.  The top 10 each system ranked is
remembered as that user's ``shown`` list for that system, so online rerankers get their
impressions labeled exactly as in the stream.

Options: ``every`` scores only every n-th event (all events are still learned); ``warmup``
skips scoring the first events (an int count or a fraction of a sized sequence);
``score_types`` scores only events of those types (e.g. ``{"click", "purchase"}`` on logs
dominated by views), others are only learned; ``batch_size > 1`` ranks a wave of consecutive
events of distinct users with one ``rank_many`` call per system (one forward pass for the deep
model), which lets learning lag ranking by at most that wave; ``retrain_every`` with
``retrain(history)`` rebuilds the deep model during the replay and installs it in every system
that has ``set_deep`` and as the ``"deep"`` system.

>>> from models.base import Interaction
>>> from models.retrieval.popularity import PopularityRecommender
>>> from models.retrieval.cooccurrence import CooccurrenceRecommender
>>> events = [Interaction(f"u{u}", item, "click", float(t))
...           for t, (u, item) in enumerate(
...               [(1, "a"), (1, "b"), (2, "c"), (2, "d"), (3, "c"), (3, "d"), (4, "a"), (4, "b")])]
>>> out = evaluate(events, {"popularity": PopularityRecommender(), "cooccurrence": CooccurrenceRecommender()},
...                progress=False)
>>> out["events"], {name: round(m["ndcg@10"], 3) for name, m in out["systems"].items()}
(8, {'popularity': 0.265, 'cooccurrence': 0.383})
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from tqdm import tqdm

from models.base import Interaction, Recommender, UserContext
from models.evaluation.metrics import RankingAccumulator

RetrainFn = Callable[[Sequence[Interaction]], "Recommender | None"]


def _waves(events: Iterable[Interaction], size: int) -> Iterator[list[Interaction]]:
    """Consecutive runs of at most ``size`` events with distinct users."""
    wave: list[Interaction] = []
    users: set[str] = set()
    for ev in events:
        if len(wave) >= size or ev.user_id in users:
            yield wave
            wave, users = [], set()
        wave.append(ev)
        users.add(ev.user_id)
    if wave:
        yield wave


def _check_args(every: int, batch_size: int, exclude: str, retrain_every: int | None,
                retrain: RetrainFn | None, warmup: int | float, total: int | None) -> int:
    """Validate :func:`evaluate`'s options; return the warmup as a number of events."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if exclude not in ("purchased", "seen"):
        raise ValueError(f"exclude must be 'purchased' or 'seen', got {exclude!r}")
    if retrain_every is not None and (retrain is None or retrain_every < 1):
        raise ValueError("retrain_every needs a positive interval and a retrain callable")
    if isinstance(warmup, float):
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"a fractional warmup must be in [0, 1), got {warmup!r}")
        if total is None:
            raise ValueError("a fractional warmup needs a sized sequence of events (or total=)")
        warmup = int(warmup * total)
    return warmup


class _Replay:
    """The state of one test-then-train replay: users' contexts, lists shown, item statistics."""

    def __init__(self, systems: dict[str, Recommender], k: int, exclude: str, max_recent: int) -> None:
        self.systems, self.k, self.exclude, self.max_recent = systems, k, exclude, max_recent
        self.acc = {name: RankingAccumulator() for name in systems}
        self.rank_seconds = {name: 0.0 for name in systems}
        self.contexts: dict[str, UserContext] = {}
        self.seen: dict[str, set[str]] = {}
        self.shown: dict[str, dict[str, tuple[str, ...]]] = {name: {} for name in systems}
        self.item_counts: dict[str, int] = {}
        self.item_users: dict[str, set[str]] = {}
        self.n = 0

    def score(self, scored: Sequence[Interaction]) -> None:
        """Rank for each event's user (before the event) with every system and judge the lists."""
        ctxs = [self.contexts.get(ev.user_id) or UserContext.empty(ev.user_id) for ev in scored]
        if self.exclude == "purchased":
            excl: list[Collection[str]] = [c.purchased for c in ctxs]
        else:
            excl = [c.purchased | self.seen.get(c.user_id, set()) for c in ctxs]
        novelty_base = math.log2(self.n + 1)
        item_counts = self.item_counts
        for name, model in self.systems.items():
            mine = self.shown[name]
            uctx = [replace(c, shown=mine.get(c.user_id, ())) for c in ctxs]
            t0 = time.perf_counter()
            lists = model.rank_many(uctx, self.k, excl)
            self.rank_seconds[name] += time.perf_counter() - t0
            a = self.acc[name]
            for ev, ranked in zip(scored, lists):
                items = [item for item, _ in ranked]
                top10 = items[:10]
                nov = None
                if top10:
                    nov = sum(novelty_base - math.log2(item_counts.get(i, 0) + 1) for i in top10) / len(top10)
                a.add(items, ev.item_id, nov)
                mine[ev.user_id] = tuple(top10)

    def learn(self, ev: Interaction) -> None:
        """Every system learns the event; the user's context and the item statistics follow it."""
        before = self.contexts.get(ev.user_id) or UserContext.empty(ev.user_id)
        for name, model in self.systems.items():
            model.learn_one(replace(before, shown=self.shown[name].get(ev.user_id, ())), ev)
        self.contexts[ev.user_id] = before.after(ev, self.max_recent)
        if self.exclude == "seen":
            self.seen.setdefault(ev.user_id, set()).add(ev.item_id)
        self.item_counts[ev.item_id] = self.item_counts.get(ev.item_id, 0) + 1
        self.item_users.setdefault(ev.item_id, set()).add(ev.user_id)
        self.n += 1

    def results(self) -> dict[str, dict[str, float]]:
        out = {}
        for name in self.systems:
            res = self.acc[name].result(len(self.item_counts), self.item_users)
            res["rank_ms"] = 1000.0 * self.rank_seconds[name] / max(self.acc[name].n, 1)
            out[name] = res
        return out


def evaluate(
    events: Iterable[Interaction],
    systems: dict[str, Recommender],
    *,
    k: int = 20,
    every: int = 1,
    warmup: int | float = 0,
    score_types: Collection[str] | None = None,
    exclude: str = "purchased",
    batch_size: int = 1,
    retrain_every: int | None = None,
    retrain: RetrainFn | None = None,
    max_recent: int = 50,
    progress: bool = True,
    total: int | None = None,
) -> dict[str, Any]:
    """Replay ``events`` once, test-then-train, for all ``systems``; return the metrics.

    Returns ``{"events": n, "seconds": s, "events_per_s": r, "systems": {name: {"hr@10",
    "ndcg@10", "mrr@20", "coverage", "novelty", "diversity", "evaluated", "rank_ms"}}}``.
    """
    if total is None and isinstance(events, Sequence):
        total = len(events)
    warmup = _check_args(every, batch_size, exclude, retrain_every, retrain, warmup, total)
    systems = dict(systems)
    run = _Replay(systems, k, exclude, max_recent)
    history: list[Interaction] = []
    start = time.perf_counter()
    bar = tqdm(total=total, disable=not progress, unit="ev", mininterval=1.0)
    for wave in _waves(events, batch_size):
        scored = []
        for i, ev in enumerate(wave):
            idx = run.n + i
            if idx >= warmup and (idx - warmup) % every == 0 and (score_types is None or ev.type in score_types):
                scored.append(ev)
        if scored:
            run.score(scored)
        for ev in wave:
            run.learn(ev)
            if retrain_every is not None and retrain is not None:
                history.append(ev)
                if run.n % retrain_every == 0:
                    _install(systems, retrain(history))
        bar.update(len(wave))
    bar.close()
    seconds = time.perf_counter() - start
    return {
        "events": run.n,
        "seconds": seconds,
        "events_per_s": run.n / seconds if seconds > 0 else 0.0,
        "systems": run.results(),
    }


def _install(systems: dict[str, Recommender], model: Recommender | None) -> None:
    """Put a freshly trained deep model into every system that can use it."""
    if model is None:
        return
    for system in systems.values():
        setter = getattr(system, "set_deep", None)
        if callable(setter):
            setter(model)
    if "deep" in systems:
        systems["deep"] = model
