"""Deep retrieval over the head of the catalogue, for serving under a per-event budget.

Brute-force retrieval over a whole catalogue costs about ``dim`` multiply-adds per item per
user (a quarter of a millisecond per user at 50k items on one core), which alone caps a worker
at a few thousand events per second. :class:`HeadRetriever` scores only the ``pool_size`` items
the deep model saw most in training (its vocabulary is ordered that way) and encodes only the
latest ``history`` items of each user. Co-occurrence still brings long-tail candidates, and the
online reranker mixes both. ``pool_size=0`` keeps full retrieval.

>>> import torch
>>> from models.base import UserContext
>>> from models.deep.model import DeepRecommender, SequenceModel
>>> _ = torch.manual_seed(0)
>>> deep = DeepRecommender(SequenceModel(50, dim=8, layers=1, heads=1).eval(), [f"i{j}" for j in range(50)], "v1")
>>> head = HeadRetriever(deep, pool_size=10)
>>> lists = head.rank_many([UserContext("u", recent_items=("i3", "i4"))], k=5, excludes=[{"i0"}])
>>> len(lists[0]), all(item in head.items and item != "i0" for item, _ in lists[0])
(5, True)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

import numpy as np
import torch

from models.base import Interaction, Ranked, Recommender, UserContext
from models.deep.candidates import DeepCandidates
from models.deep.model import DeepRecommender


class HeadRetriever(Recommender):
    name = "deep"

    def __init__(self, deep: DeepRecommender, pool_size: int = 4096, history: int = 20) -> None:
        self.deep = deep
        self.history = max(1, int(history))
        items = deep.vocab_items()
        if pool_size > 0:
            items = items[:pool_size]
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

    def _trimmed(self, users: Sequence[UserContext]) -> list[UserContext]:
        h = self.history
        return [u if len(u.recent_items) <= h else replace(u, recent_items=u.recent_items[-h:]) for u in users]

    @torch.inference_mode()
    def _top(self, users: Sequence[UserContext], k: int,
             excludes: Sequence[Collection[str]] | None) -> torch.return_types.topk:
        """Top-``k`` scores and pool positions per user (``-inf`` where fewer items remain)."""
        scores = self.deep.user_vectors(self._trimmed(users)) @ self.matrix.T
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

    def predict_one(self, user: UserContext, item_id: str) -> float:
        return self.deep.predict_one(self._trimmed([user])[0], item_id)
