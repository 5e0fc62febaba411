"""Why the reranker put an item where it did: its candidate sources and each feature's share of its score.

The reranker scores a candidate as ``w . x`` (see :mod:`models.rerank.features`): the feature row
``x`` times the learned weights ``w``. Each product ``w_f * x_f`` is that feature's contribution,
and the contributions add up to the score. An item's candidate sources are the retrievers that
proposed it: the ones whose rank feature is set (``pop_rr``, ``cooc_rr``, ``deep_rr``).

>>> import numpy as np
>>> from models.rerank.features import FEATURES
>>> row = np.zeros(len(FEATURES)); row[FEATURES.index("cooc_rr")] = 0.5; row[FEATURES.index("pop_rr")] = 0.25
>>> w = np.zeros(len(FEATURES)); w[FEATURES.index("cooc_rr")] = 2.0; w[FEATURES.index("pop_rr")] = -1.0
>>> explain_row(row, w)
{'sources': ['cooccurrence', 'popularity'], 'contributions': {'pop_rr': -0.25, 'cooc_rr': 1.0}}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.rerank.features import FEATURES

SOURCE_FEATURES = (("deep", FEATURES.index("deep_rr")), ("cooccurrence", FEATURES.index("cooc_rr")),
                   ("popularity", FEATURES.index("pop_rr")))
"""Each candidate source and the index of the rank feature it sets."""


def explain_row(row: NDArray[Any] | Sequence[float], weights: NDArray[Any]) -> dict[str, Any]:
    """The sources and the non-zero feature contributions of one candidate's feature row."""
    x = np.asarray(row, dtype=np.float64)
    sources = [name for name, f in SOURCE_FEATURES if x[f] > 0]
    parts = x * weights
    contributions = {FEATURES[f]: round(float(parts[f]), 6) for f in np.flatnonzero(parts).tolist()}
    return {"sources": sources, "contributions": contributions}
