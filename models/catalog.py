"""Every ranking model by name: classes whose constructors need no arguments.

The checks of :mod:`models.checks` run over all of them, in the variants each model declares
with ``check_params()``.  The deep model is not listed: it cannot be built without a trained
network and its vocabulary (see :mod:`models.deep.model` and :mod:`models.deep.registry`); the
checks run ``"hybrid"`` with a small real deep retriever installed instead (``hybrid(deep)``).

>>> sorted(MODELS)
['cooccurrence', 'hybrid', 'online', 'popularity']
>>> MODELS["popularity"]().name
'popularity'
"""

from __future__ import annotations

from models.base import Recommender
from models.hybrid import HybridRecommender
from models.rerank.online import OnlineRanker
from models.retrieval.cooccurrence import CooccurrenceRecommender
from models.retrieval.popularity import PopularityRecommender

MODELS: dict[str, type[Recommender]] = {
    "popularity": PopularityRecommender,
    "cooccurrence": CooccurrenceRecommender,
    "online": OnlineRanker,
    "hybrid": HybridRecommender,
}
