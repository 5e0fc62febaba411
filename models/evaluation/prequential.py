"""Prequential (test-then-train) evaluation of several systems side by side in one replay.

The replay judges the lists the worker pushes, ranked when the worker ranks them. For every
event, in time order, every system first learns the event; then each ranks for the user's
context after it (``k = 20``), leaving out what the worker leaves out
(:func:`models.exclusions.exclusions`: the event's item and every purchased item; with
``exclude_seen`` every item the user has touched too), and the list is kept as the one pushed to
the user. The user's next event is the target for HR@10, NDCG@10 and MRR@20 of that list
(:mod:`models.evaluation.metrics`). A user's first event is never judged (nothing was pushed
before it). The top 10 of each system's list is the user's ``shown`` list for that system when
the next event is learned, so online rerankers get their impressions labeled as in the stream.

Events are replayed in the order given; :func:`shuffle_ties` puts events with equal ``ts`` in a
seeded random order first (a file's order of ties, e.g. by id, would leak into sequence models).

Options: ``warmup`` judges only lists ranked after the first ``warmup`` events (an int count or
a fraction of a sized sequence); ``every`` ranks only after every n-th event (events after an
unranked one are not judged, and the impression the next event labels is older: a cheaper,
coarser replay); ``score_types`` judges only events of those types (e.g. ``{"click",
"purchase"}`` on logs dominated by views); ``batch_size > 1`` replays waves of consecutive
events of distinct users as the worker replays a micro-batch's rounds: the wave is learned, then
ranked with one ``rank_many`` call per system (one forward pass for the deep model);
``list_filter`` (a :class:`~models.filters.rules.ListFilter`: the item catalogue and the rules)
filters each list as the worker filters what it pushes, from ``fetch(k)`` candidates at the
event's time, and reports ``categories@10`` (distinct catalogue categories per top-10 list);
``retrain_every`` with ``retrain(history)`` rebuilds the deep model during the replay (after
event ``retrain_from``, default ``retrain_every``, then every ``retrain_every`` events) and
installs it in every system that has ``set_deep`` and as the ``"deep"`` system; ``parts`` splits
the judged span (``[warmup, total)``, by the judged event's index) into that many equal parts,
reported per system as ``per_part``; once a retrained deep model with ``vocab_items()`` is served,
events whose item it does not know (items newer than the model) are also reported apart, per
system, as ``newer_than_deep``.

>>> from models.base import Interaction
>>> from models.retrieval.popularity import PopularityRecommender
>>> from models.retrieval.cooccurrence import CooccurrenceRecommender
>>> events = [Interaction(f"u{u}", item, "click", float(t))
...           for t, (u, item) in enumerate(
...               [(1, "a"), (1, "b"), (2, "c"), (2, "d"), (3, "c"), (3, "d"), (4, "a"), (4, "b")])]
>>> out = evaluate(events, {"popularity": PopularityRecommender(), "cooccurrence": CooccurrenceRecommender()},
...                progress=False)
>>> out["events"], out["systems"]["cooccurrence"]["evaluated"]   # four users, each judged once
(8, 4)
>>> {name: (m["hr@10"], m["ndcg@10"]) for name, m in out["systems"].items()}  # users 3 and 4 are hits
{'popularity': (0.5, 0.375), 'cooccurrence': (0.5, 0.5)}
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import fields, replace
from typing import Any

from tqdm import tqdm

from models.base import Interaction, Recommender, UserContext
from models.evaluation.metrics import RankingAccumulator
from models.exclusions import exclusions
from models.filters.rules import ListFilter

RetrainFn = Callable[[Sequence[Interaction]], "Recommender | None"]
_POSITIONAL = ("user_id", "recent_items", "purchased", "counts", "shown", "last_ts", "purchase_order", "hidden")
_FAST_CONTEXT = tuple(f.name for f in fields(UserContext)) == _POSITIONAL


def _with_shown(ctx: UserContext, shown: tuple[str, ...]) -> UserContext:
    """``replace(ctx, shown=shown)``, built directly while the fields are the known ones (twice as fast)."""
    if ctx.shown is shown:
        return ctx
    if _FAST_CONTEXT:
        return UserContext(ctx.user_id, ctx.recent_items, ctx.purchased, ctx.counts, shown, ctx.last_ts,
                           ctx.purchase_order, ctx.hidden)
    return replace(ctx, shown=shown)


def shuffle_ties(events: Iterable[Interaction], seed: int) -> list[Interaction]:
    """``events`` sorted by ``ts``, events with equal ``ts`` in a random order drawn from ``seed``.

    The order of ties depends only on the seed (and which events tie), never on ids or on the
    file's order: the same seed gives the same order, another seed another one.

    >>> evs = [Interaction("u", item, "click", 1.0) for item in "abcdef"] + [Interaction("u", "z", "click", 0.0)]
    >>> [e.item_id for e in shuffle_ties(evs, 0)] == [e.item_id for e in shuffle_ties(evs, 0)]
    True
    >>> shuffle_ties(evs, 0)[0].item_id, sorted(e.item_id for e in shuffle_ties(evs, 1)[1:])
    ('z', ['a', 'b', 'c', 'd', 'e', 'f'])
    """
    evs = list(events)
    rng = random.Random(seed)
    keys = [(ev.ts, rng.random()) for ev in evs]
    order = sorted(range(len(evs)), key=keys.__getitem__)
    return [evs[i] for i in order]


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


def _check_args(every: int, batch_size: int, parts: int, retrain_every: int | None,
                retrain: RetrainFn | None, warmup: int | float, total: int | None) -> int:
    """Validate :func:`evaluate`'s options; return the warmup as a number of events."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts!r}")
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
    """The state of one test-then-train replay: users' contexts, lists pushed, item statistics."""

    def __init__(self, systems: dict[str, Recommender], k: int, exclude_seen: bool, max_recent: int,
                 list_filter: ListFilter | None = None) -> None:
        self.systems, self.k, self.exclude_seen, self.max_recent = systems, k, exclude_seen, max_recent
        self.filter = list_filter if list_filter is not None and list_filter.active else None
        """The catalogue and the rules, applied as the worker applies them (None: no rules)."""
        self.categories = {name: [0, 0] for name in systems}
        """Per system: distinct categories summed over the top-10 lists pushed, and the lists (with rules)."""
        self.acc = {name: RankingAccumulator() for name in systems}
        self.rank_seconds = {name: 0.0 for name in systems}
        self.n_ranked = 0
        self.contexts: dict[str, UserContext] = {}
        self.seen: dict[str, set[str]] = {}
        self.shown: dict[str, dict[str, tuple[str, ...]]] = {name: {} for name in systems}
        """Per system and user: the top 10 pushed after the user's latest event (the impression)."""
        self.pushed: dict[str, dict[str, tuple[list[str], float | None]]] = {name: {} for name in systems}
        """Per system and user: the top ``k`` pushed after the user's latest event and its novelty."""
        self.ranked_at: dict[str, int] = {}
        """Per user: the index of the event after which the user's pending lists were ranked."""
        self.item_counts: dict[str, int] = {}
        self.log_counts: dict[str, float] = {}
        """Per item: ``log2(events of the item + 1)`` (what novelty needs, kept up to date)."""
        self.item_users: dict[str, set[str]] = {}
        self.n = 0
        self.deep_items: Collection[str] | None = None
        """The items the deep model being served knows (None: no deep model yet)."""
        self.newer = {name: [0, 0.0, 0.0] for name in systems}
        """Per system, over events whose item the served deep model does not know: judged, HR@10, NDCG@10 sums."""

    def judge(self, ev: Interaction, part: int | None) -> None:
        """Look the event's item up in the lists pushed after the user's previous event."""
        newer = self.deep_items is not None and ev.item_id not in self.deep_items
        for name in self.systems:
            items, nov = self.pushed[name][ev.user_id]
            self.acc[name].add(items, ev.item_id, nov, ev.user_id, part)
            if newer:
                tally = self.newer[name]
                tally[0] += 1
                top = items[:10]
                if ev.item_id in top:
                    tally[1] += 1.0
                    tally[2] += 1.0 / math.log2(top.index(ev.item_id) + 2)

    def learn(self, ev: Interaction) -> None:
        """Every system learns the event; the user's context and the item statistics follow it."""
        before = self.contexts.get(ev.user_id) or UserContext.empty(ev.user_id)
        for name, model in self.systems.items():
            model.learn_one(_with_shown(before, self.shown[name].get(ev.user_id, ())), ev)
        self.contexts[ev.user_id] = before.after(ev, self.max_recent)
        if self.exclude_seen:
            self.seen.setdefault(ev.user_id, set()).add(ev.item_id)
        count = self.item_counts[ev.item_id] = self.item_counts.get(ev.item_id, 0) + 1
        self.log_counts[ev.item_id] = math.log2(count + 1)
        self.item_users.setdefault(ev.item_id, set()).add(ev.user_id)
        self.ranked_at.pop(ev.user_id, None)  # the lists pushed before this event are spent
        self.n += 1

    def push(self, ranked: Sequence[tuple[int, Interaction]]) -> None:
        """Rank for each ``(index, event)``'s user right after the event, as the worker does, and keep the lists."""
        seen = self.seen
        ctxs = [self.contexts[ev.user_id] for _, ev in ranked]
        excl = [exclusions(c, ev, seen.get(ev.user_id, ()) if self.exclude_seen else ())
                for c, (_, ev) in zip(ctxs, ranked)]
        novelty_base = math.log2(self.n + 1)
        log_counts = self.log_counts
        filt = self.filter
        fetch = filt.fetch(self.k) if filt is not None else self.k
        for name, model in self.systems.items():
            shown, pushed = self.shown[name], self.pushed[name]
            uctx = [_with_shown(c, shown.get(c.user_id, ())) for c in ctxs]
            t0 = time.perf_counter()
            lists = model.rank_many(uctx, fetch, excl)
            self.rank_seconds[name] += time.perf_counter() - t0
            for c, got, ex, (_, ev) in zip(ctxs, lists, excl, ranked):
                # an excluded item is never credited, even from a model that ignores ``exclude``
                if filt is None:
                    items = [item for item, _ in got if item not in ex]
                else:  # the worker's catalogue and rules, at the event's time
                    kept = filt.apply([(item, score, "") for item, score in got if item not in ex], self.k, ev.ts)
                    items = [item for item, _, _ in kept]
                    self._count_categories(name, items[:10])
                top10 = items[:10]
                nov = None
                if top10:
                    nov = novelty_base - sum(log_counts.get(i, 0.0) for i in top10) / len(top10)
                pushed[c.user_id] = (items, nov)
                shown[c.user_id] = tuple(top10)
        self.n_ranked += len(ranked)
        for idx, ev in ranked:
            self.ranked_at[ev.user_id] = idx

    def _count_categories(self, name: str, top10: list[str]) -> None:
        assert self.filter is not None
        cat = self.filter.catalogue
        got = {cat.category(i) for i in top10}
        got.discard(None)
        tally = self.categories[name]
        tally[0] += len(got)
        tally[1] += 1

    def results(self, bounds: Sequence[tuple[int, int]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in self.systems:
            acc = self.acc[name]
            res: dict[str, Any] = dict(acc.result(len(self.item_counts), self.item_users))
            res["rank_ms"] = 1000.0 * self.rank_seconds[name] / max(self.n_ranked, 1)
            if self.filter is not None:
                cats, lists = self.categories[name]
                res["categories@10"] = cats / lists if lists else 0.0
            per_part = []
            for p, (lo, hi) in enumerate(bounds):
                n, hr, nd, rr = acc.by_part.get(p, [0.0, 0.0, 0.0, 0.0])
                per_part.append({"from_event": lo, "to_event": hi, "evaluated": int(n),
                                 "hr@10": hr / n if n else None, "ndcg@10": nd / n if n else None,
                                 "mrr@20": rr / n if n else None})
            res["per_part"] = per_part
            n_new, hr_new, nd_new = self.newer[name]
            res["newer_than_deep"] = {"evaluated": n_new, "hr@10": hr_new / n_new if n_new else None,
                                      "ndcg@10": nd_new / n_new if n_new else None}
            out[name] = res
        return out


def _part_bounds(warmup: int, total: int | None, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive ``[from, to)`` event ranges covering ``[warmup, total)`` (none if unsized)."""
    if total is None or total <= warmup:
        return []
    span = total - warmup
    return [(warmup + span * p // parts, warmup + span * (p + 1) // parts) for p in range(parts)]


def evaluate(
    events: Iterable[Interaction],
    systems: dict[str, Recommender],
    *,
    k: int = 20,
    every: int = 1,
    warmup: int | float = 0,
    score_types: Collection[str] | None = None,
    exclude_seen: bool = False,
    batch_size: int = 1,
    retrain_every: int | None = None,
    retrain: RetrainFn | None = None,
    retrain_from: int | None = None,
    max_recent: int = 50,
    parts: int = 5,
    per_user: bool = False,
    progress: bool = True,
    desc: str | None = None,
    total: int | None = None,
    list_filter: ListFilter | None = None,
) -> dict[str, Any]:
    """Replay ``events`` once, test-then-train, for all ``systems``; return the metrics.

    Returns ``{"events": n, "seconds": s, "events_per_s": r, "systems": {name: {"hr@10",
    "ndcg@10", "mrr@20", "coverage", "novelty", "diversity", "evaluated", "rank_ms",
    "per_part", "newer_than_deep"}}}`` (``newer_than_deep``: ``{"evaluated", "hr@10", "ndcg@10"}``) (``per_part``: one ``{"from_event", "to_event", "evaluated", "hr@10",
    "ndcg@10", "mrr@20"}`` per part, the metrics None where nothing was judged), and with
    ``per_user`` also ``"per_user": {name: {user: [judged, NDCG@10 sum]}}``.
    """
    if total is None and isinstance(events, Sequence):
        total = len(events)
    warmup = _check_args(every, batch_size, parts, retrain_every, retrain, warmup, total)
    bounds = _part_bounds(warmup, total, parts)
    first_retrain = retrain_from if retrain_from is not None else retrain_every
    if first_retrain is not None and first_retrain < 1:
        raise ValueError(f"retrain_from must be >= 1, got {first_retrain!r}")
    systems = dict(systems)
    run = _Replay(systems, k, exclude_seen, max_recent, list_filter)
    history: list[Interaction] = []
    start = time.perf_counter()
    bar = tqdm(total=total, disable=not progress, unit="ev", mininterval=1.0, desc=desc)
    for wave in _waves(events, batch_size):
        first = run.n
        for i, ev in enumerate(wave):
            idx = first + i
            prev = run.ranked_at.get(ev.user_id)
            if prev is not None and prev >= warmup and (score_types is None or ev.type in score_types):
                run.judge(ev, _part_of(idx, bounds))
        for ev in wave:
            run.learn(ev)
            if retrain_every is not None and retrain is not None and first_retrain is not None:
                history.append(ev)
                due = run.n >= first_retrain and (run.n - first_retrain) % retrain_every == 0
                if due and (total is None or run.n < total):  # none after the last event
                    model = retrain(history)
                    _install(systems, model)
                    known = getattr(model, "vocab_items", None)
                    if callable(known):
                        run.deep_items = frozenset(known())
        run.push([(first + i, ev) for i, ev in enumerate(wave) if (first + i) % every == 0])
        bar.update(len(wave))
    bar.close()
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {
        "events": run.n,
        "seconds": seconds,
        "events_per_s": run.n / seconds if seconds > 0 else 0.0,
        "systems": run.results(bounds),
    }
    if per_user:
        out["per_user"] = {name: run.acc[name].by_user for name in run.systems}
    return out


def _part_of(idx: int, bounds: Sequence[tuple[int, int]]) -> int | None:
    for p, (lo, hi) in enumerate(bounds):
        if lo <= idx < hi:
            return p
    return None


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
