"""The full system: popularity + co-occurrence + deep candidates, reranked online.

:class:`HybridRecommender` is :class:`~models.online.OnlineRanker` with a deep retriever that
can be swapped while serving (:meth:`HybridRecommender.set_deep`).  With no deep model it
behaves exactly like the ``"online"`` system.  The reranker's deep features are rank- and
range-normalized, so weights learned with one deep model stay meaningful for the next.

>>> from models.base import Interaction, UserContext
>>> from models.popularity import PopularityRecommender
>>> h = HybridRecommender()
>>> for t, item in enumerate("abab"):
...     h.learn_one(UserContext.empty("u"), Interaction("u", item, "click", float(t)))
>>> stand_in = PopularityRecommender(half_life=None)   # any Recommender can serve as the deep retriever
>>> stand_in.learn_one(UserContext.empty("x"), Interaction("x", "z", "click", 0.0))
>>> h.set_deep(stand_in)
>>> sorted(src for _, _, src in h.rank_with_sources(UserContext.empty("v"), k=3))
['deep', 'popularity', 'popularity']
"""

from __future__ import annotations

from models.base import Recommender
from models.checkpoint import load
from models.online import OnlineRanker


class HybridRecommender(OnlineRanker):
    """Online reranking over popularity, co-occurrence and an optional, swappable deep model."""

    name = "hybrid"

    def set_deep(self, model: Recommender | None) -> None:
        """Install (or remove, with ``None``) the deep retriever; takes effect at the next rank call."""
        self.deep = model

    @property
    def deep_version(self) -> str | int | None:
        return None if self.deep is None else self.deep.version

    @classmethod
    def from_bytes(cls, data: bytes, deep: Recommender | None = None) -> "HybridRecommender":
        return cls.from_state(load(data, cls.name), deep=deep)  # type: ignore[return-value]
