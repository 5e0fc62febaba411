"""Online learning-to-rank with River: rerank the candidates of several retrievers.

:class:`OnlineRanker` merges candidates from decayed popularity, item co-occurrence and
(optionally) a deep retriever, describes every (user, candidate) pair with the features in
:data:`FEATURES`, and scores them with the weights of a River ``LogisticRegression``.

Ranking is batched: :meth:`OnlineRanker.rank_many_with_sources` scores a whole wave of users
with a few numpy calls over a :class:`~models.retrieval.candidates.CandidateIndex` (integer item ids, the
co-occurrence rows and popularity figures as arrays): one feature matrix for every (user,
candidate) pair of the wave, one product with the River model's weight vector, one stable sort.

Learning is pairwise (RankNet style).  Each ranking for a user is remembered as the user's
impression: the best ``memory_items`` candidates with their feature rows (float32), in a
bounded LRU over ``memory_users`` users.  The user's next event labels it: when the chosen item
is among the remembered candidates, the model learns that the chosen item beats (a) the
``max_skipped`` shown items ranked just above it that the user skipped and (b) ``n_sampled``
random remembered candidates, i.e. ``learn_one(x_chosen - x_other, True)`` without intercept.
One skipped and one sampled pair (the defaults) learn as well as more pairs on MovieLens and
cost two River updates at most.  A chosen item the retrievers did not propose teaches the
reranker nothing (it cannot reorder what it is not given) and only trains the retrievers.

>>> from models.base import Interaction, UserContext
>>> m = OnlineRanker()
>>> u = UserContext.empty("u1")
>>> for t, item in enumerate(["a", "b", "c"]):
...     ev = Interaction("u1", item, "click", float(t))
...     m.learn_one(u, ev)
...     u = u.after(ev)
>>> [(item, source) for item, _, source in m.rank_with_sources(UserContext("u2", ("a",)), k=2)]
[('b', 'cooccurrence'), ('c', 'popularity')]
>>> m.version
3
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Collection, Generator, Iterator, Sequence
from typing import Any, Protocol, Self, TypedDict, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from river import linear_model, optim

from models.base import EVENT_WEIGHTS, Interaction, Ranked, Recommender, UserContext
from models.checkpoint import dump, dump_steps, load
from models.deep.candidates import DeepCandidates, PoolCache
from models.deep.candidates import select as select_deep
from models.linear import set_weights, weights_of
from models.rerank.capacity import ItemCapacity
from models.rerank.explain import explain_row
from models.rerank.features import FEATURES, SOURCES, CandidateSources, F, FloatArray, IntArray, candidate_features
from models.retrieval.candidates import CHUNK_USERS, CandidateIndex
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender

_IDX = {name: i for i, name in enumerate(FEATURES)}
PRIOR: dict[str, float] = {"cooc_rr": 1.0, "cooc_rel": 0.5, "pop_rr": 0.3, "deep_rr": 1.0, "deep_rel": 0.3}
"""Initial weights: co-occurrence first, then deep, popularity to fill; learning corrects them."""

Sourced = list[tuple[str, float, str]]
DeepLists = DeepCandidates | Sequence[Ranked]
"""Deep candidates of many users, as arrays or as ranked lists (see :mod:`models.deep.candidates`)."""
Scored = tuple[IntArray, IntArray, FloatArray, IntArray, FloatArray]
"""Every candidate of a chunk of users: (user row, item id, score, source, feature rows)."""
Impression = tuple[tuple[int, ...], NDArray[np.float32], int]
"""A list shown to a user: its candidates (index ids, best first), their feature rows and the
index's :attr:`~models.retrieval.candidates.CandidateIndex.generation` when it was made."""


@runtime_checkable
class ArrayRetriever(Protocol):
    """A deep retriever that returns its candidates as arrays (see :class:`models.deep.retriever.HeadRetriever`)."""

    def candidates(self, users: Sequence[UserContext], k: int = 10,
                   excludes: Sequence[Collection[str]] | None = None) -> DeepCandidates: ...


class RankerParams(TypedDict):
    """The hyperparameters of an :class:`OnlineRanker` (its constructor's, saved in checkpoints)."""

    n_popular: int
    n_cooc: int
    n_deep: int
    memory_items: int
    memory_users: int
    n_sampled: int
    max_skipped: int
    lr: float
    l2: float
    seed: int


class OnlineRanker(Recommender):
    """Candidates from popularity + co-occurrence (+ deep), reranked by an online River model.

    ``popularity``/``cooccurrence`` are trained by this model (a co-occurrence model built
    here shares the popularity model as its cold-start fallback); ``deep`` is only used to
    retrieve and is replaced from outside (see :class:`models.hybrid.HybridRecommender`).
    Retrievers passed in may be pre-trained (their state is mirrored into :attr:`index` here),
    but from then on they must learn only through this model's :meth:`learn_one`.
    """

    name = "online"

    def __init__(
        self,
        popularity: PopularityRecommender | None = None,
        cooccurrence: CooccurrenceRecommender | None = None,
        deep: Recommender | None = None,
        n_popular: int = 30,
        n_cooc: int = 50,
        n_deep: int = 50,
        memory_items: int = 30,
        memory_users: int = 50_000,
        n_sampled: int = 1,
        max_skipped: int = 1,
        lr: float = 0.05,
        l2: float = 1e-5,
        seed: int = 0,
    ) -> None:
        self.popularity = popularity if popularity is not None else PopularityRecommender()
        self.cooccurrence = (
            cooccurrence
            if cooccurrence is not None
            else CooccurrenceRecommender(fallback=self.popularity, learn_fallback=False)
        )
        self._learn_pop = self.cooccurrence.fallback is not self.popularity or not self.cooccurrence.learn_fallback
        self.deep = deep
        self.retriever: Recommender | None = None if deep is None else self.serving_retriever(deep)
        """The serving form of ``deep`` (see :mod:`models.deep.retriever`); None means ``deep`` itself."""
        self.params: RankerParams = {
            "n_popular": int(n_popular), "n_cooc": int(n_cooc), "n_deep": int(n_deep),
            "memory_items": int(memory_items), "memory_users": int(memory_users),
            "n_sampled": int(n_sampled), "max_skipped": int(max_skipped), "lr": float(lr), "l2": float(l2),
            "seed": int(seed),
        }  # fmt: skip
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2, intercept_lr=0.0)
        set_weights(self.model, PRIOR)
        self.memory: OrderedDict[str, Impression] = OrderedDict()
        """Per user: the remembered candidates (item ids of :attr:`index`) and their feature rows."""
        self.index = CandidateIndex(self.cooccurrence, self.popularity.counts)
        pop = self.popularity
        for item, c in pop.counts.items():
            self.index.pop_counts[self.index.ids[item]] = c
        for item, ls in pop.log_scores.items():
            self.index.pop_log_scores[self.index.ids[item]] = ls
        self._pop_cache: tuple[int, IntArray] = (-1, np.zeros(0, np.int64))
        self._pool_ids: PoolCache = {}
        """Reranker ids of the deep retriever's item pool (see :func:`models.deep.candidates.entries`)."""
        self.n_learned = 0
        self.n_pairs = 0
        self._rng = random.Random(seed)
        self.capacity: ItemCapacity | None = None
        """The bound on the items held (see :meth:`set_max_items`); None: no bound."""

    def serving_retriever(self, model: Recommender) -> Recommender:
        """How a deep ``model`` retrieves candidates here: the model itself (see the hybrid's override)."""
        return model

    # -- features -------------------------------------------------------------------------
    def _pop_top(self) -> tuple[IntArray, float]:
        """Ids of the popularity leaderboard's head (for ranks) and log1p of the top decayed score."""
        pop = self.popularity
        n = self.params["n_popular"] + 20
        if self._pop_cache[0] != pop.top_version:
            intern = self.index.intern
            self._pop_cache = (pop.top_version, np.array([intern(i) for i in pop.top_items(n)], np.int64))
        ids = self._pop_cache[1]
        top_dec = math.log1p(pop.score(self.index.names[int(ids[0])])) if len(ids) else 0.0
        return ids, top_dec

    def _score_chunk(self, users: Sequence[UserContext], excludes: Sequence[Collection[str]], w: FloatArray,
                     deep_lists: DeepLists | None = None) -> Scored:
        """Every candidate of a chunk of users: (user row, item id, score, source, feature rows)."""
        if deep_lists is None and self.deep is not None:
            deep_lists = self.deep_candidates(users, excludes)
        ku, ki, src, X = candidate_features(self.candidate_sources(), users, excludes, deep_lists)
        return ku, ki, X @ w, src, X

    def candidate_sources(self) -> CandidateSources:
        """What :func:`~models.rerank.features.candidate_features` reads of the retrievers, now."""
        ids, top_dec = self._pop_top()
        p = self.params
        return CandidateSources(self.index, self.popularity, ids, top_dec, p["n_popular"], p["n_cooc"],
                                self._pool_ids)

    def _weights(self) -> FloatArray:
        w = weights_of(self.model)
        return np.array([w.get(name, 0.0) for name in FEATURES])

    def _score_wave(self, users: Sequence[UserContext], excludes: Sequence[Collection[str]],
                    deep_lists: DeepLists | None = None) -> Iterator[tuple[int, Scored]]:
        w = self._weights()
        for lo in range(0, len(users), CHUNK_USERS):
            hi = lo + CHUNK_USERS
            yield lo, self._score_chunk(users[lo:hi], excludes[lo:hi], w,
                                        None if deep_lists is None else select_deep(deep_lists, range(lo, min(hi, len(users)))))

    def deep_candidates(self, users: Sequence[UserContext], excludes: Sequence[Collection[str]]) -> DeepLists | None:
        """The deep retriever's candidates for many users in one call (None without a deep model).

        Callers that rank the same users in several rounds compute these once and pass them to
        :meth:`rank_many_with_sources`, so the deep model runs one forward pass per batch.
        """
        if self.deep is None:
            return None
        retriever = self.retriever or self.deep
        if isinstance(retriever, ArrayRetriever):  # the array form (see models.deep.candidates)
            return retriever.candidates(list(users), self.params["n_deep"], list(excludes))
        return retriever.rank_many(list(users), self.params["n_deep"], list(excludes))

    # -- ranking --------------------------------------------------------------------------
    def rank_many_with_sources(
        self,
        users: Sequence[UserContext],
        k: int = 10,
        excludes: Sequence[Collection[str]] | None = None,
        deep_lists: DeepLists | None = None,
    ) -> list[Sourced]:
        """Top ``k`` per user as ``(item_id, score, source)``; remembers each list as the impression.

        ``deep_lists`` are precomputed deep candidates (see :meth:`deep_candidates`).
        """
        if excludes is None:
            excludes = [frozenset()] * len(users)
        if len(excludes) != len(users):
            raise ValueError(f"got {len(excludes)} exclusion sets for {len(users)} users")
        users, excludes = list(users), list(excludes)
        top = max(k, self.params["memory_items"], 0)
        k = max(k, 0)
        names = self.index.names
        results: list[Sourced] = []
        if deep_lists is not None and len(deep_lists) != len(users):
            raise ValueError(f"got {len(deep_lists)} deep candidate lists for {len(users)} users")
        for lo, (ku, ki, score, src, X) in self._score_wave(users, excludes, deep_lists):
            n_users = min(CHUNK_USERS, len(users) - lo)
            order = np.argsort(-score, kind="stable")
            order = order[np.argsort(ku[order].astype(np.int16), kind="stable")]
            cnt = np.bincount(ku, minlength=n_users)
            starts = np.cumsum(cnt) - cnt
            rank = np.arange(len(order)) - starts[ku[order]]
            order = order[rank < top]
            ends = np.cumsum(np.minimum(cnt, top)).tolist()
            items_l = ki[order].tolist()
            score_l = score[order].tolist()
            src_l = src[order].tolist()
            rows = X[order].astype(np.float32)
            a = 0
            for u in range(n_users):
                b = ends[u]
                results.append([(names[i], s, SOURCES[c]) for i, s, c in zip(items_l[a : a + k], score_l[a : a + k], src_l[a : a + k])][: b - a])
                self._remember(users[lo + u].user_id, tuple(items_l[a:b]), rows[a:b])
                a = b
        return results

    def explain(self, user_id: str, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Why each of ``item_ids`` is in the list last ranked for ``user_id`` (see
        :mod:`models.rerank.explain`); an item that was not in it is left out."""
        impression = self._impression(self.memory.get(user_id))
        if impression is None:
            return {}
        items, rows, _ = impression
        where = {i: pos for pos, i in enumerate(items)}
        ids, w = self.index.ids, self._weights()
        out: dict[str, dict[str, Any]] = {}
        for item in item_ids:
            pos = where.get(ids.get(item, -1))
            if pos is not None:
                out[item] = explain_row(rows[pos], w)
        return out

    def rank_with_sources(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Sourced:
        return self.rank_many_with_sources([user], k, [exclude])[0]

    def rank_many(self, users: Sequence[UserContext], k: int = 10,
                  excludes: Sequence[Collection[str]] | None = None) -> list[Ranked]:
        return [[(i, s) for i, s, _ in lst] for lst in self.rank_many_with_sources(users, k, excludes)]

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        return self.rank_many([user], k, [exclude])[0]

    def predict_one(self, user: UserContext, item_id: str) -> float:
        """The reranker's score of one item (as :meth:`rank` computes it with no exclusions)."""
        (_, (_, ki, score, _, _)), = self._score_wave([user], [frozenset()])
        i = self.index.ids.get(item_id)
        if i is not None:
            hit = np.flatnonzero(ki == i)
            if len(hit):
                return float(score[hit[0]])
        # not proposed by any retriever: only item-level and recency features
        row = [0.0] * F
        pop = self.popularity
        if pop.max_count > 0:
            row[_IDX["pop_all"]] = math.log1p(pop.counts.get(item_id, 0.0)) / math.log1p(pop.max_count)
        _, top_dec = self._pop_top()
        if top_dec > 0:
            row[_IDX["pop_decayed"]] = math.log1p(pop.score(item_id)) / top_dec
        rec = list(reversed(user.recent_items))
        if item_id in rec:
            row[_IDX["in_recent"]] = 1.0
            row[_IDX["recent_rr"]] = 1.0 / (1 + rec.index(item_id))
        row[_IDX["shown_before"]] = 1.0 if item_id in user.shown else 0.0
        return float(np.array(row) @ self._weights())

    # -- learning -------------------------------------------------------------------------
    def _remember(self, user_id: str, items: tuple[int, ...], rows: NDArray[np.float32]) -> None:
        mem = self.memory
        mem[user_id] = (items, rows, self.index.generation)
        mem.move_to_end(user_id)
        if len(mem) > self.params["memory_users"]:
            mem.popitem(last=False)

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        self.learn_feedback(user, event)
        self.learn_items(user, event)

    def learn_feedback(self, user: UserContext, event: Interaction, weight: float | None = None) -> None:
        """The user's side of :meth:`learn_one`: the event labels the list last shown to the user.

        Only the worker that holds the user's impression can do this; :meth:`learn_items` is the
        rest, which any worker can do from the event and the user's latest items. ``weight``
        replaces the event type's default weight (:data:`models.base.EVENT_WEIGHTS`).
        """
        if weight is None:
            weight = EVENT_WEIGHTS.get(event.type)
            if weight is None:
                raise ValueError(f"unknown event type {event.type!r}; expected one of {sorted(EVENT_WEIGHTS)}")
        impression = self._impression(self.memory.pop(event.user_id, None))
        if impression is not None:
            self._learn_impression(impression, event.item_id, user.shown, weight)
        self.n_learned += 1

    def learn_rejection(self, user: UserContext, item_id: str, weight: float = 1.0) -> None:
        """The user rejected ``item_id`` (a dislike or a hide) from the list last shown: every
        other item shown is preferred to it, pair by pair, with ``weight``.

        Only the rejected item's side is learned: nothing is chosen, so popularity and
        co-occurrence do not change, and the impression stays for the user's next event.
        """
        impression = self._impression(self.memory.get(user.user_id))
        self.n_learned += 1
        if impression is None or weight <= 0:
            return
        items, rows, _ = impression
        ids = self.index.ids
        ri = ids.get(item_id)
        try:
            pos = items.index(ri)
        except ValueError:
            return
        shown = {ids.get(s) for s in user.shown} if user.shown else set(items[:10])
        others = [i for i in range(len(items)) if i != pos and items[i] in shown]
        if not others:
            return
        learn = self.model.learn_one
        for diff in (rows[others] - rows[pos]).tolist():
            x = {FEATURES[f]: d for f, d in enumerate(diff) if d != 0.0}
            if x:
                learn(x, True, w=weight)
                self.n_pairs += 1

    def learn_items(self, user: UserContext, event: Interaction) -> None:
        """The items' side of :meth:`learn_one`: popularity and co-occurrence (and their arrays).

        It reads only ``user.recent_items`` (the latest :attr:`item_window` matter), so a worker
        can learn it from an event another worker consumed (see :mod:`stream_app.core.sharing`).
        """
        if self.capacity is not None and self.capacity.rounds:
            # a forgotten item in the user's latest items stays forgotten (no row comes back for it)
            ids = self.index.ids
            recent = user.recent_items[-self.cooccurrence.window :]
            if not all(r in ids for r in recent):
                user = UserContext(user.user_id, tuple(r for r in recent if r in ids))
        self.cooccurrence.learn_one(user, event)
        if self._learn_pop:
            self.popularity.learn_one(user, event)
        self.index.learn(user, event)
        item = event.item_id
        pop = self.popularity
        self.index.set_popularity(self.index.ids[item], pop.counts[item], pop.log_scores[item])

    # -- capacity -------------------------------------------------------------------------
    def set_max_items(self, max_items: int) -> None:
        """Hold at most ``max_items`` items (0: no bound); past it, :meth:`upkeep` forgets the coldest."""
        self.index.max_items = max(0, int(max_items))
        self.capacity = ItemCapacity(max_items) if max_items > 0 else None
        self.index.reserve()

    def upkeep(self) -> bool:
        """One bounded step of keeping the items held under the bound; True while more remains
        (call it between batches until it returns False, or once per batch)."""
        if self.capacity is None:
            return False
        return self.capacity.step(self.index, self.popularity, self.cooccurrence, self._protected)

    def _protected(self) -> IntArray:
        """Ids never forgotten: the popularity leaderboard and the deep model's item pool."""
        ids = self.index.ids
        top = [ids.get(item, -1) for item in self.popularity.top_items(self.popularity.top_n)]
        parts = [np.array(top, np.int64)] + [pool for _, pool in self._pool_ids.values()]
        return np.concatenate(parts)

    def weights(self) -> dict[str, float]:
        """The reranker's weights, feature -> weight (a copy)."""
        return weights_of(self.model)

    def set_weights(self, weights: dict[str, float]) -> None:
        """Replace the reranker's weights (e.g. by an average over the workers of a group)."""
        set_weights(self.model, {f: w for f, w in weights.items() if f in _IDX}, clear=True)

    @property
    def item_window(self) -> int:
        """How many of a user's latest items :meth:`learn_items` reads."""
        return self.cooccurrence.window

    def _impression(self, impression: Impression | None) -> Impression | None:
        """``impression``, unless an item id in it was freed since (it may name another item now)."""
        if impression is None or self.index.still_means(impression[0], impression[2]):
            return impression
        return None

    def _learn_impression(self, impression: Impression, chosen: str, shown: Sequence[str], weight: float) -> None:
        items, rows, _ = impression
        ci = self.index.ids.get(chosen)
        try:
            pos = items.index(ci)
        except ValueError:
            return
        p = self.params
        if shown:
            ids = self.index.ids
            shown_set = {ids.get(s) for s in shown}
        else:
            shown_set = set(items[:10])
        others = [i for i in range(pos) if items[i] in shown_set][-p["max_skipped"] :] if p["max_skipped"] else []
        if p["n_sampled"] and len(items) > 1:
            taken = set(others)
            taken.add(pos)
            rest = [i for i in range(len(items)) if i not in taken]
            if rest:
                others += self._rng.sample(rest, min(p["n_sampled"], len(rest)))
        if not others:
            return
        diffs = (rows[pos] - rows[others]).tolist()
        learn = self.model.learn_one
        for diff in diffs:
            x = {FEATURES[f]: d for f, d in enumerate(diff) if d != 0.0}
            if x:
                learn(x, True, w=weight)
                self.n_pairs += 1

    @property
    def version(self) -> int:
        return self.n_learned

    # -- checkpoint -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "popularity": self.popularity.state(),
            "cooccurrence": self.cooccurrence.state(),
            "weights": weights_of(self.model),
            "optimizer_iterations": self.model.optimizer.n_iterations,
            "n_learned": self.n_learned,
            "n_pairs": self.n_pairs,
        }

    @classmethod
    def from_state(cls, st: dict[str, Any], deep: Recommender | None = None) -> Self:
        pop = PopularityRecommender.from_state(st["popularity"])
        cooc = CooccurrenceRecommender.from_state(st["cooccurrence"], fallback=pop)
        m = cls(popularity=pop, cooccurrence=cooc, deep=deep, **st["params"])
        set_weights(m.model, st["weights"], clear=True)
        m.model.optimizer.n_iterations = int(st["optimizer_iterations"])
        m.n_learned = int(st["n_learned"])
        m.n_pairs = int(st["n_pairs"])
        return m

    def to_bytes(self) -> bytes:
        """Weights, counters and retriever state (the deep model is saved by its registry)."""
        return dump(self.name, self.state())

    def to_bytes_steps(self) -> Generator[None, None, bytes]:
        """:meth:`to_bytes` in steps of bounded work (:func:`models.checkpoint.dump_steps`)."""
        return dump_steps(self.name, self.state())

    @classmethod
    def from_bytes(cls, data: bytes, deep: Recommender | None = None) -> Self:
        return cls.from_state(load(data, cls.name), deep=deep)
