"""Deep retrieval over the head of the catalogue, for serving under a per-event budget.

Brute-force retrieval over a whole catalogue costs about ``dim`` multiply-adds per item per
user (a quarter of a millisecond per user at 50k items on one core), which alone caps a worker
at a few thousand events per second. :class:`HeadRetriever` scores only the items the deep model
saw most in training (its vocabulary is ordered that way): by default the pool chosen at
training, the fewest items that cover ``pool_coverage`` (95%) of the training interactions
(:attr:`~models.deep.model.DeepRecommender.pool_size`, recorded in the manifest); a long tail
that few people touch costs most of the scoring and brings few hits. Co-occurrence still brings
long-tail candidates, and the online reranker mixes both. An explicit ``pool_size`` overrides
the recorded pool (``0`` keeps full retrieval); a model with no recorded pool (an older
artifact) serves its :data:`FALLBACK_POOL` most frequent items.

Each user is encoded with the history length the model was trained with (its ``max_len - 1``
items); an explicit ``history`` reads only the latest ``history`` items (after collapsing
repeats), which is cheaper but not what the model learned from.

>>> import torch
>>> from models.base import UserContext
>>> from models.deep.model import DeepRecommender, SequenceModel
>>> _ = torch.manual_seed(0)
>>> deep = DeepRecommender(SequenceModel(50, dim=8, layers=1, heads=1).eval(), [f"i{j}" for j in range(50)], "v1")
>>> head = HeadRetriever(deep, pool_size=10)
>>> lists = head.rank_many([UserContext("u", recent_items=("i3", "i4"))], k=5, excludes=[{"i0"}])
>>> len(lists[0]), all(item in head.items and item != "i0" for item, _ in lists[0])
(5, True)
>>> HeadRetriever(deep).history == deep.model.max_len - 1
True
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import torch

from models.base import Interaction, Ranked, Recommender, UserContext
from models.deep.candidates import DeepCandidates
from models.deep.model import DeepRecommender

FALLBACK_POOL = 4096
"""Pool of a model whose artifact records none (trained before pools were chosen by coverage)."""


def serving_pool(deep: DeepRecommender, pool_size: int | None = None) -> int:
    """How many of ``deep``'s most frequent items are served: ``pool_size`` when given (0 = all),
    else the pool recorded at training, else :data:`FALLBACK_POOL`."""
    n = len(deep.vocab)
    if pool_size is None or pool_size < 0:
        pool_size = deep.pool_size if deep.pool_size is not None else FALLBACK_POOL
    return n if pool_size == 0 else min(n, int(pool_size))


class HeadRetriever(Recommender):
    """Deep retrieval over the model's serving pool (see the module docstring)."""

    name = "deep"

    def __init__(self, deep: DeepRecommender, pool_size: int | None = None, history: int | None = None) -> None:
        self.deep = deep
        self.history = deep.trained_history if history is None or history <= 0 else int(history)
        """Items of a user encoded (the model's trained length unless overridden)."""
        items = deep.vocab_items()[:serving_pool(deep, pool_size)]
        self.items: list[str] = items
        self.position = {item: p for p, item in enumerate(items)}
        index = deep.vocab.index
        rows = torch.tensor([index[i] - 1 for i in items], dtype=torch.long)
        with torch.inference_mode():
            self.matrix = deep.model.item_matrix()[rows].clone()

    @property
    def version(self) -> str | None:
        return self.deep.version

    def learn_one(self, user: UserContext, event: Interaction) -> None:
        """Does nothing: the deep model is trained offline."""

    @torch.inference_mode()
    def _top(self, users: Sequence[UserContext], k: int,
             excludes: Sequence[Collection[str]] | None) -> torch.return_types.topk:
        """Top-``k`` scores and pool positions per user (``-inf`` where fewer items remain)."""
        scores = self.deep.user_vectors(users, self.history) @ self.matrix.T
        if excludes is not None:
            rows: list[int] = []
            cols: list[int] = []
            get = self.position.get
            for r, ex in enumerate(excludes):
                for item in ex:
                    c = get(item)
                    if c is not None:
                        rows.append(r)
                        cols.append(c)
            if rows:
                scores[rows, cols] = float("-inf")
        return torch.topk(scores, min(k, scores.shape[1]), dim=1)

    def candidates(self, users: Sequence[UserContext], k: int = 10,
                   excludes: Sequence[Collection[str]] | None = None) -> DeepCandidates:
        """:meth:`rank_many` as arrays (what the online reranker consumes)."""
        if not users or k <= 0 or not self.items:
            z = np.zeros((len(users), 0))
            return DeepCandidates(self.items, z.astype(np.int64), z)
        top = self._top(users, k, excludes)
        return DeepCandidates(self.items, top.indices.numpy(), top.values.numpy())

    def rank_many(self, users: Sequence[UserContext], k: int = 10,
                  excludes: Sequence[Collection[str]] | None = None) -> list[Ranked]:
        if not users or k <= 0 or not self.items:
            return [[] for _ in users]
        return self.candidates(users, k, excludes).lists()

    def rank(self, user: UserContext, k: int = 10, exclude: Collection[str] = frozenset()) -> Ranked:
        return self.rank_many([user], k, [exclude])[0]

    @torch.inference_mode()
    def predict_one(self, user: UserContext, item_id: str) -> float:
        j = self.deep.vocab.index.get(item_id)
        if j is None:
            return float("-inf")
        return float(self.deep.user_vectors([user], self.history)[0] @ self.deep.model.item_emb.weight[j])
