"""Every ranking model by name, as zero-argument factories.

The contract suite (``tests/unit/test_models_contract.py``) runs over all of them.  The deep
model is not listed: it cannot be built without a trained network and its vocabulary (see
:mod:`models.deep.model` and :mod:`models.deep.registry`); the contract suite checks ``"hybrid"`` with a
small real deep retriever installed instead.

>>> sorted(MODELS)
['cooccurrence', 'hybrid', 'online', 'popularity']
>>> MODELS["popularity"]().name
'popularity'
"""

from __future__ import annotations

from collections.abc import Callable

from models.base import Recommender
from models.hybrid import HybridRecommender
from models.rerank.online import OnlineRanker
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender

MODELS: dict[str, Callable[[], Recommender]] = {
    "popularity": PopularityRecommender,
    "cooccurrence": CooccurrenceRecommender,
    "online": OnlineRanker,
    "hybrid": HybridRecommender,
}
