"""Recommendations on request: lists computed now, by the pipeline's own ranker and exclusions.

Three kinds of answer, each named by a new ``recommendation_id``:

* :meth:`OnRequest.for_user` - a fresh list for a known user, from the state the worker stores
  (the same context and exclusions as the list pushed after the user's latest event, plus the
  caller's ``exclude``); with no model change since, it *is* the pushed list.
* :meth:`OnRequest.for_session` - an anonymous session: a cold context made of the recent item
  ids the caller sends (oldest first), ranked the same way.
* :meth:`OnRequest.similar` - items that follow or co-occur with one item (the co-occurrence
  neighbours), popular items to fill.

A list served on request is **not** the user's impression: the reranker's impression memory,
the live-quality bookkeeping and the stored state keep the list pushed after the user's latest
event, which is what the user's next event labels. A request may be a prefetch that nobody sees;
learning from it as if it were shown would teach the reranker from lists that were never shown.
(Clients that know what they displayed will report it as an impression event.)

Everything here is pure and synchronous: the web views call it between two batches of the scorer
(one event loop), so a ranking never sees a half-learned batch.

>>> from stream_app.core.pipeline import Pipeline
>>> p = Pipeline(top_k=3)
>>> from models.base import Interaction, UserContext
>>> for t, (u, i) in enumerate([("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "z")]):
...     p.ranker.learn_one(UserContext(u, ("x",) if i == "y" else ()), Interaction(u, i, "click", float(t)))
>>> r = OnRequest(p, ids=lambda: "id-1")
>>> ans = r.for_session(["x"], n=2)
>>> ans["recommendation_id"], [(i["item_id"], i["source"]) for i in ans["items"]]
('id-1', [('y', 'cooccurrence'), ('z', 'popularity')])
>>> [i["item_id"] for i in r.similar("x", n=2)["items"]]
['y', 'z']
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from models.base import UserContext
from stream_app.core import logic
from stream_app.core.experiments import Variant
from stream_app.core.pipeline import Pipeline
from stream_app.core.state import UserState
from stream_app.core.variants import DEFAULT, rank_lists

CATEGORY_FETCH = 5
"""With a category filter, this many times the usual candidates are ranked before the filter (a
category may hold few of the best candidates; the list may still come out shorter than ``n``)."""
ANONYMOUS = "\x00anonymous"
"""The user id a list on request is ranked under: no real id (ids are non-empty text of the
contract; this one starts with a NUL byte, which no producer sends) so no real user's impression
is replaced."""


@dataclass(frozen=True, slots=True)
class _Last:
    """What the pipeline's exclusions read of the event just applied: the item it touched."""

    item_id: str


def _items(ranked: Sequence[tuple[str, float, str]], why: dict[str, dict[str, Any]] | None = None
           ) -> list[dict[str, Any]]:
    if why is None:
        return [{"item_id": i, "score": round(float(s), 6), "source": src} for i, s, src in ranked]
    return [{"item_id": i, "score": round(float(s), 6), "source": src,
             "explain": why.get(i, {"sources": [src], "contributions": {}})} for i, s, src in ranked]


class OnRequest:
    """Rank on request with ``pipeline``'s ranker, leaving what it learns from untouched."""

    def __init__(self, pipeline: Pipeline, ids: Callable[[], str] | None = None, recent_max: int = 50) -> None:
        self.pipeline = pipeline
        self.ids = ids if ids is not None else logic.new_recommendation_id
        self.recent_max = recent_max
        self.served = 0

    # -- the three answers --------------------------------------------------------------------
    def for_user(self, user_id: str, state: UserState | None, n: int, exclude: Collection[str] = frozenset(),
                 category: str | None = None, explain: bool = False) -> dict[str, Any]:
        """A list for ``user_id`` from the stored ``state`` (None: no event of the user yet)."""
        t0 = time.perf_counter()
        st = state if state is not None else UserState()
        ctx = logic.to_context(user_id, st)
        last = _Last(st.recent[-1]) if st.recent else None
        variant = self.pipeline.lists.assign([user_id])[0]
        ranked, why = self._rank(ctx, n, logic.exclusions(ctx, last) | frozenset(exclude), category, explain,
                                 variant)
        return self._answer(t0, ranked, why, variant, user_id=user_id, events_applied=sum(st.counts),
                            purchase_probability=st.purchase_probability,
                            return_probability=st.return_probability)

    def for_session(self, items: Sequence[str], n: int, exclude: Collection[str] = frozenset(),
                    category: str | None = None, explain: bool = False) -> dict[str, Any]:
        """A list for an anonymous session whose recent items are ``items`` (oldest first)."""
        t0 = time.perf_counter()
        ctx = UserContext(ANONYMOUS, tuple(items[-self.recent_max:]))
        last = _Last(items[-1]) if items else None
        variant = self.pipeline.lists.for_session()
        ranked, why = self._rank(ctx, n, logic.exclusions(ctx, last) | frozenset(exclude), category, explain,
                                 variant)
        return self._answer(t0, ranked, why, variant, session_items=len(ctx.recent_items))

    def similar(self, item_id: str, n: int, category: str | None = None, explain: bool = False) -> dict[str, Any]:
        """Items that follow ``item_id`` in users' sequences (co-occurrence), popular ones to fill."""
        t0 = time.perf_counter()
        cooc = self.pipeline.ranker.cooccurrence
        filt = self.pipeline.filter  # with rules or a catalogue: rank more, then filter down to n
        fetch = filt.fetch(n) if category is None else filt.fetch(n) * CATEGORY_FETCH
        ranked = cooc.rank(UserContext(ANONYMOUS, (item_id,)), fetch, exclude={item_id})
        # voted neighbours score a transition probability (> 0); the fill scores -1/(1 + popularity)
        sourced = [(i, s, "cooccurrence" if s > 0 else "popularity") for i, s in ranked]
        sourced = self._filter(sourced, n, category)
        known = bool(cooc.neighbors.get(item_id)) or cooc.fallback.score(item_id) > 0
        why = {i: {"sources": [src], "contributions": {}} for i, _, src in sourced} if explain else None
        return self._answer(t0, sourced, why, None, item_id=item_id, known=known)

    # -- shared parts ---------------------------------------------------------------------------
    def _answer(self, t0: float, ranked: Sequence[tuple[str, float, str]], why: dict[str, dict[str, Any]] | None,
                variant: Variant | None, **fields: Any) -> dict[str, Any]:
        self.served += 1
        answer = {"recommendation_id": self.ids(), **fields, "items": _items(ranked, why),
                  "model_version": self.pipeline.model_version(), "generated_at": time.time(),
                  "latency_ms": round((time.perf_counter() - t0) * 1000.0, 3)}
        if variant is not None and self.pipeline.lists.experiment is not None:
            answer["variant"] = variant.name
        return answer

    def _filter(self, ranked: list[tuple[str, float, str]], n: int, category: str | None
                ) -> list[tuple[str, float, str]]:
        """The catalogue and the rules (as for pushed lists), then the caller's category."""
        filt = self.pipeline.filter
        if category is not None:
            cat = filt.catalogue
            ranked = [c for c in ranked if cat.category(c[0]) == category]
        return filt.apply(ranked, n, time.time()) if filt.active else ranked[:n]

    def _rank(self, ctx: UserContext, n: int, exclude: frozenset[str], category: str | None = None,
              explain: bool = False, variant: Variant = DEFAULT
              ) -> tuple[list[tuple[str, float, str]], dict[str, dict[str, Any]] | None]:
        """The ranker's top ``n`` for ``ctx`` (of ``category`` only, when given), ranked under
        :data:`ANONYMOUS` and then forgotten; with ``explain`` also why each item is there.

        The ranker remembers every list it ranks as its user's impression, in a bounded LRU: the
        list is ranked under an id of its own, which is removed afterwards, and an entry the LRU
        dropped to make room for it is put back where it was (first, the next to go).
        """
        ranker = self.pipeline.ranker  # looked up each time: a restored checkpoint replaces it
        memory: OrderedDict[str, Any] = ranker.memory
        oldest = next(iter(memory.items())) if memory and ANONYMOUS not in memory else None
        why = None
        try:
            keep = None
            if category is not None:
                cat = self.pipeline.filter.catalogue
                keep = lambda item: cat.category(item) == category  # noqa: E731
            # the catalogue, the rules and the variant, as for pushed lists
            ranked = rank_lists(self.pipeline.lists, ranker, [_as_anonymous(ctx)], [exclude], n, time.time(),
                                [variant], [self.ids()], keep=keep,
                                fetch_scale=1 if category is None else CATEGORY_FETCH)[0].items
            if explain:
                why = ranker.explain(ANONYMOUS, [i for i, _, _ in ranked])
        finally:
            memory.pop(ANONYMOUS, None)
            if oldest is not None and oldest[0] not in memory:
                memory[oldest[0]] = oldest[1]
                memory.move_to_end(oldest[0], last=False)
        return ranked, why


def _as_anonymous(ctx: UserContext) -> UserContext:
    return UserContext(ANONYMOUS, ctx.recent_items, ctx.purchased, ctx.counts, ctx.shown, ctx.last_ts,
                       ctx.purchase_order, ctx.hidden)

