"""What a trained deep model records for serving: its pool of items and the history it reads.

Scoring every item of a large catalogue for every event is most of a worker's cost, and most
of the catalogue is a tail that few interactions touch. :func:`serving_plan` picks the fewest
most frequent items that cover a share of the training interactions (95% by default,
``TrainConfig.pool_coverage``) and records it, with the coverage reached, the pool sizes at
other coverages and the history length the model was trained with, in the artifact's manifest;
:class:`models.deep.retriever.HeadRetriever` serves that pool and that history unless the
worker's settings override them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.deep.config import TrainConfig
from models.deep.model import Vocabulary

COVERAGE_CURVE = (0.5, 0.8, 0.9, 0.95, 0.99, 1.0)


def serving_plan(vocab: Vocabulary, seqs: Sequence[list[int]], cfg: TrainConfig) -> dict[str, Any]:
    """The serving pool and history of a model trained on ``seqs``.

    The pool is the fewest items, in vocabulary order (most frequent first), whose interactions
    (consecutive repeats collapsed) reach ``cfg.pool_coverage`` of all; ``pool_curve`` gives the
    pool size at other coverages, for the dashboard and for choosing an override.

    >>> plan = serving_plan(Vocabulary(["a", "b", "c"]), [[1, 1, 1, 2], [1, 3, 1, 2]], TrainConfig())
    >>> plan["pool_size"], plan["pool_curve"]["0.5"], plan["history"]
    (3, 1, 49)
    """
    counts = np.bincount(np.fromiter((j for s in seqs for j in s), np.int64), minlength=len(vocab) + 1)[1:]
    total = int(counts.sum())
    cum = np.cumsum(counts) / max(total, 1)

    def size(share: float) -> int:
        return min(len(vocab), int(np.searchsorted(cum, share - 1e-12)) + 1)

    pool = size(cfg.pool_coverage)
    return {"pool_size": pool, "pool_coverage": float(cum[pool - 1]) if total else 1.0,
            "coverage_target": cfg.pool_coverage, "interactions": total,
            "pool_curve": {str(c): size(c) for c in COVERAGE_CURVE}, "history": cfg.max_len - 1}
