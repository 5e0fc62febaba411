"""Online learning-to-rank with River: rerank the candidates of several retrievers.

:class:`OnlineRanker` merges candidates from decayed popularity, item co-occurrence and
(optionally) a deep retriever, describes every (user, candidate) pair with the features in
:data:`FEATURES`, and scores them with the weights of a River ``LogisticRegression``.

Learning is pairwise (RankNet style).  Each ranking for a user is remembered as the user's
impression: the best ``memory_items`` candidates with their features, in a bounded LRU over
``memory_users`` users (a compact float32 array per user).  The user's next event labels it:
when the chosen item is among the remembered candidates, the model learns that the chosen
item beats (a) the shown items ranked above it that the user skipped and (b) a few sampled
remembered candidates, i.e. ``learn_one(x_chosen - x_other, True)`` without intercept.  A
chosen item the retrievers did not propose teaches the reranker nothing (it cannot reorder
what it is not given) and only trains the retrievers.  Per event this is a few River updates
on ~15 features, tens of microseconds in all.

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
from array import array
from collections import OrderedDict
from collections.abc import Collection, Sequence

from river import linear_model, optim

from models.base import EVENT_WEIGHTS, Interaction, Ranked, Recommender, UserContext
from models.checkpoint import dump, load
from models.cooccurrence import CooccurrenceRecommender
from models.popularity import PopularityRecommender

FEATURES: tuple[str, ...] = (
    "pop_rr",  # 1 / (1 + rank) in the popularity leaderboard, 0 when not in it
    "pop_all",  # log1p(all-time count) / log1p(largest count)
    "pop_decayed",  # log1p(decayed score) / log1p(top decayed score)
    "cooc_rr",  # 1 / (1 + rank) among the co-occurrence votes
    "cooc_rel",  # vote / best vote for this user
    "cooc_last",  # transition probability from the user's latest item
    "deep_rr",  # 1 / (1 + rank) in the deep retriever's list
    "deep_rel",  # (score - lowest) / (highest - lowest) in the deep list
    "in_recent",  # the item is among the user's recent items
    "recent_rr",  # 1 / (1 + distance from the end of the recent sequence)
    "cold_pop",  # pop_rr for users with fewer than 3 events
    "shown_before",  # the item was in the list shown last time (and not chosen)
    "n_sources",  # how many retrievers proposed it, / 3
)
F = len(FEATURES)
_IDX = {name: i for i, name in enumerate(FEATURES)}
PRIOR: dict[str, float] = {"cooc_rr": 1.0, "cooc_rel": 0.5, "pop_rr": 0.3, "deep_rr": 1.0, "deep_rel": 0.3}
"""Initial weights: co-occurrence first, then deep, popularity to fill; learning corrects them."""
SOURCES = ("deep", "cooccurrence", "popularity")

Sourced = list[tuple[str, float, str]]


class OnlineRanker(Recommender):
    """Candidates from popularity + co-occurrence (+ deep), reranked by an online River model.

    ``popularity``/``cooccurrence`` are trained by this model (a co-occurrence model built
    here shares the popularity model as its cold-start fallback); ``deep`` is only used to
    retrieve and is replaced from outside (see :class:`models.hybrid.HybridRecommender`).
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
        n_sampled: int = 2,
        max_skipped: int = 4,
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
        self.params = {
            "n_popular": int(n_popular), "n_cooc": int(n_cooc), "n_deep": int(n_deep),
            "memory_items": int(memory_items), "memory_users": int(memory_users),
            "n_sampled": int(n_sampled), "max_skipped": int(max_skipped), "lr": float(lr), "l2": float(l2),
            "seed": int(seed),
        }  # fmt: skip
        self.model = linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=l2, intercept_lr=0.0)
        for feat, w in PRIOR.items():
            self.model._weights[feat] = w
        self.memory: OrderedDict[str, tuple[tuple[str, ...], array]] = OrderedDict()
        self.n_learned = 0
        self.n_pairs = 0
        self._rng = random.Random(seed)

    # -- features -------------------------------------------------------------------------
    def _candidates(
        self, users: Sequence[UserContext], excludes: Sequence[Collection[str]]
    ) -> list[tuple[list[str], list[tuple[float, ...]], list[str]]]:
        """Per user: candidate items, their feature rows and their source labels."""
        p = self.params
        pop = self.popularity
        board = pop.leaderboard()[: p["n_popular"] + 20]
        pop_rank = {item: r for r, (item, _) in enumerate(board)}
        top_dec = math.log1p(board[0][1]) if board else 0.0
        log_max = math.log1p(pop.max_count)
        deep_lists = None
        if self.deep is not None:
            deep_lists = self.deep.rank_many(list(users), p["n_deep"], list(excludes))
        out = []
        for ui, user in enumerate(users):
            excl = excludes[ui]
            votes = self.cooccurrence.neighbor_scores(user)
            cooc_top = sorted(((-s, b) for b, s in votes.items()), key=lambda t: t)[: p["n_cooc"]]
            cooc_rank = {b: r for r, (_, b) in enumerate(cooc_top)}
            best_vote = -cooc_top[0][0] if cooc_top else 1.0
            last = self.cooccurrence.last_item_scores(user)
            deep_rank: dict[str, int] = {}
            deep_rel: dict[str, float] = {}
            if deep_lists is not None:
                dl = deep_lists[ui]
                if dl:
                    hi, lo = dl[0][1], dl[-1][1]
                    span = hi - lo if hi > lo else 1.0
                    for r, (item, s) in enumerate(dl):
                        deep_rank[item] = r
                        deep_rel[item] = (s - lo) / span
            recent_pos = {item: i for i, item in enumerate(reversed(user.recent_items))}
            n_events = sum(user.counts.values()) if user.counts else len(user.recent_items)
            cold = n_events < 3
            shown = set(user.shown)
            cands: dict[str, None] = {}
            for item in deep_rank:
                cands[item] = None
            for _, item in cooc_top:
                cands[item] = None
            for item, _ in board[: p["n_popular"]]:
                cands[item] = None
            items, rows, sources = [], [], []
            for item in cands:
                if item in excl:
                    continue
                pr, cr, dr = pop_rank.get(item), cooc_rank.get(item), deep_rank.get(item)
                rp = recent_pos.get(item)
                pop_rr = 1.0 / (1 + pr) if pr is not None else 0.0
                row = (
                    pop_rr,
                    math.log1p(pop.counts.get(item, 0.0)) / log_max if log_max > 0 else 0.0,
                    math.log1p(pop.score(item)) / top_dec if top_dec > 0 else 0.0,
                    1.0 / (1 + cr) if cr is not None else 0.0,
                    votes.get(item, 0.0) / best_vote,
                    last.get(item, 0.0),
                    1.0 / (1 + dr) if dr is not None else 0.0,
                    deep_rel.get(item, 0.0),
                    1.0 if rp is not None else 0.0,
                    1.0 / (1 + rp) if rp is not None else 0.0,
                    pop_rr if cold else 0.0,
                    1.0 if item in shown else 0.0,
                    ((pr is not None) + (cr is not None) + (dr is not None)) / 3.0,
                )
                best = min((r, i) for i, r in enumerate((dr, cr, pr)) if r is not None)
                items.append(item)
                rows.append(row)
                sources.append(SOURCES[best[1]])
            out.append((items, rows, sources))
        return out

    def _weights(self) -> list[float]:
        w = self.model._weights
        return [w.get(name, 0.0) for name in FEATURES]

    # -- ranking --------------------------------------------------------------------------
    def rank_many_with_sources(
        self,
        users: Sequence[UserContext],
        k: int = 10,
        excludes: Sequence[Collection[str]] | None = None,
    ) -> list[Sourced]:
        """Top ``k`` per user as ``(item_id, score, source)``; remembers each list as the impression."""
        if excludes is None:
            excludes = [frozenset()] * len(users)
        if len(excludes) != len(users):
            raise ValueError(f"got {len(excludes)} exclusion sets for {len(users)} users")
        w = self._weights()
        keep = self.params["memory_items"]
        results: list[Sourced] = []
        for user, (items, rows, sources) in zip(users, self._candidates(users, excludes)):
            scored = sorted(
                ((sum(a * b for a, b in zip(w, row)), item, row, src) for item, row, src in zip(items, rows, sources)),
                key=lambda t: (-t[0], t[1]),
            )
            results.append([(item, s, src) for s, item, _, src in scored[: max(k, 0)]])
            self._remember(user.user_id, scored[:keep])
        return results

    def rank_with_sources(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Sourced:
        return self.rank_many_with_sources([user], k, [exclude])[0]

    def rank_many(self, users, k=10, excludes=None) -> list[Ranked]:
        return [[(i, s) for i, s, _ in lst] for lst in self.rank_many_with_sources(users, k, excludes)]

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        return self.rank_many([user], k, [exclude])[0]

    def predict_one(self, user: UserContext, item_id: str) -> float:
        """The reranker's score of one item (as :meth:`rank` computes it with no exclusions)."""
        items, rows, _ = self._candidates([user], [frozenset()])[0]
        w = self._weights()
        if item_id in items:
            row = rows[items.index(item_id)]
        else:  # not proposed by any retriever: only item-level and recency features
            row = [0.0] * F
            pop = self.popularity
            if pop.max_count > 0:
                row[_IDX["pop_all"]] = math.log1p(pop.counts.get(item_id, 0.0)) / math.log1p(pop.max_count)
            board = pop.leaderboard()
            if board and board[0][1] > 0:
                row[_IDX["pop_decayed"]] = math.log1p(pop.score(item_id)) / math.log1p(board[0][1])
            rec = list(reversed(user.recent_items))
            if item_id in rec:
                row[_IDX["in_recent"]] = 1.0
                row[_IDX["recent_rr"]] = 1.0 / (1 + rec.index(item_id))
            row[_IDX["shown_before"]] = 1.0 if item_id in user.shown else 0.0
        return sum(a * b for a, b in zip(w, row))

    # -- learning -------------------------------------------------------------------------
    def _remember(self, user_id: str, scored: list) -> None:
        flat = array("f")
        for _, _, row, _ in scored:
            flat.extend(row)
        mem = self.memory
        mem[user_id] = (tuple(item for _, item, _, _ in scored), flat)
        mem.move_to_end(user_id)
        while len(mem) > self.params["memory_users"]:
            mem.popitem(last=False)

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        weight = EVENT_WEIGHTS.get(event.type)
        if weight is None:
            raise ValueError(f"unknown event type {event.type!r}; expected one of {sorted(EVENT_WEIGHTS)}")
        impression = self.memory.pop(event.user_id, None)
        if impression is not None:
            self._learn_impression(impression, event.item_id, user.shown, weight)
        self.cooccurrence.learn_one(user, event)
        if self._learn_pop:
            self.popularity.learn_one(user, event)
        self.n_learned += 1

    def _learn_impression(self, impression, chosen: str, shown: Sequence[str], weight: float) -> None:
        items, flat = impression
        try:
            pos = items.index(chosen)
        except ValueError:
            return
        p = self.params
        shown_set = set(shown) if shown else set(items[:10])
        others = [i for i in range(pos) if items[i] in shown_set][-p["max_skipped"] :]
        rest = [i for i in range(len(items)) if i != pos and i not in others]
        if rest and p["n_sampled"]:
            others += self._rng.sample(rest, min(p["n_sampled"], len(rest)))
        xp = flat[pos * F : (pos + 1) * F]
        learn = self.model.learn_one
        for j in others:
            xn = flat[j * F : (j + 1) * F]
            diff = {FEATURES[f]: xp[f] - xn[f] for f in range(F) if xp[f] != xn[f]}
            if diff:
                learn(diff, True, w=weight)
                self.n_pairs += 1

    @property
    def version(self) -> int:
        return self.n_learned

    # -- checkpoint -----------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "params": self.params,
            "popularity": self.popularity.state(),
            "cooccurrence": self.cooccurrence.state(),
            "weights": {str(k): float(v) for k, v in self.model._weights.to_dict().items()},
            "optimizer_iterations": self.model.optimizer.n_iterations,
            "n_learned": self.n_learned,
            "n_pairs": self.n_pairs,
        }

    @classmethod
    def from_state(cls, st: dict, deep: Recommender | None = None) -> "OnlineRanker":
        pop = PopularityRecommender.from_state(st["popularity"])
        cooc = CooccurrenceRecommender.from_state(st["cooccurrence"], fallback=pop)
        m = cls(popularity=pop, cooccurrence=cooc, deep=deep, **st["params"])
        m.model._weights.clear()
        for feat, w in st["weights"].items():
            m.model._weights[feat] = w
        m.model.optimizer.n_iterations = int(st["optimizer_iterations"])
        m.n_learned = int(st["n_learned"])
        m.n_pairs = int(st["n_pairs"])
        return m

    def to_bytes(self) -> bytes:
        """Weights, counters and retriever state (the deep model is saved by its registry)."""
        return dump(self.name, self.state())

    @classmethod
    def from_bytes(cls, data: bytes, deep: Recommender | None = None) -> "OnlineRanker":
        return cls.from_state(load(data, cls.name), deep=deep)
