"""The full system: popularity + co-occurrence + deep candidates, reranked online.

:class:`HybridRecommender` is :class:`~models.rerank.online.OnlineRanker` with a deep retriever that
can be swapped while serving (:meth:`HybridRecommender.set_deep`).  With no deep model it
behaves exactly like the ``"online"`` system.  The reranker's deep features are rank- and
range-normalized, so weights learned with one deep model stay meaningful for the next.

>>> from models.base import Interaction, UserContext
>>> from models.retrieval.popularity import PopularityRecommender
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

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from models.base import Recommender
from models.checkpoint import load
from models.rerank.online import OnlineRanker

if TYPE_CHECKING:
    from models.deep.model import DeepRecommender


class HybridRecommender(OnlineRanker):
    """Online reranking over popularity, co-occurrence and an optional, swappable deep model."""

    name = "hybrid"
    deep_pool: int | None = None
    """Items a deep model retrieves from, its most frequent in training. None: the pool chosen at
    training (covering 95% of training interactions, see :mod:`models.deep.retriever`); 0: the
    whole vocabulary; N: the N most frequent (an override)."""
    deep_history: int | None = None
    """Latest items of a user a deep model encodes. None (or 0): the length the model was trained
    with (its ``max_len - 1``); N: the latest N (an override, cheaper but not what it learned)."""

    def serving_retriever(self, model: Recommender) -> Recommender:
        """How ``model`` retrieves here: a :class:`~models.deep.retriever.HeadRetriever` for a
        sequence model, the model itself otherwise. Building it gathers embeddings: do it off any
        event loop and pass it to :meth:`set_deep`."""
        if hasattr(model, "user_vectors") and hasattr(model, "vocab_items"):
            from models.deep.retriever import HeadRetriever

            return HeadRetriever(cast("DeepRecommender", model), self.deep_pool, self.deep_history)
        return model

    def set_deep(self, model: Recommender | None, retriever: Recommender | None = None) -> None:
        """Install (or remove, with ``None``) the deep model; takes effect at the next rank call."""
        self.retriever = None if model is None else (retriever or self.serving_retriever(model))
        self.deep = model

    @property
    def deep_version(self) -> str | int | None:
        return None if self.deep is None else self.deep.version

    @classmethod
    def check_params(cls) -> Iterator[dict[str, Any]]:
        """Without a deep model, and with a small untrained one over the items of the check stream."""
        yield {}
        try:
            import torch

            from models.deep.model import DeepRecommender, SequenceModel, Vocabulary
        except ImportError:  # torch missing: the deep variant cannot be built
            return
        from models.datasets import synthetic_items

        items = synthetic_items()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = SequenceModel(n_items=len(items), dim=8, layers=1, heads=1, max_len=8)
        yield {"deep": DeepRecommender(net, Vocabulary(items), version="check-1")}

    @classmethod
    def from_bytes(cls, data: bytes, deep: Recommender | None = None) -> HybridRecommender:
        m = cls.from_state(load(data, cls.name))
        m.set_deep(deep)
        return m
