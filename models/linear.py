"""Reading and writing the weights of a River linear model, in one place.

River's ``LogisticRegression`` exposes its weights read-only (``model.weights``, a copy); it has
no public way to set them. The rerankers start from prior weights and checkpoints restore
learned ones, so :func:`set_weights` is the one place in :mod:`models` that writes River's
weight store; if River changes how it keeps weights, only this module changes.

>>> from river import linear_model
>>> m = linear_model.LogisticRegression()
>>> set_weights(m, {"a": 0.5, "b": -1.0})
>>> weights_of(m)
{'a': 0.5, 'b': -1.0}
>>> set_weights(m, {"c": 2.0}, clear=True)
>>> weights_of(m)
{'c': 2.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def weights_of(model: Any) -> dict[str, float]:
    """A copy of a River linear model's weights, feature -> weight."""
    return {str(k): float(v) for k, v in model.weights.items()}


def set_weights(model: Any, weights: Mapping[str, float], clear: bool = False) -> None:
    """Set weights of a River linear model (others are kept unless ``clear``)."""
    store = model._weights  # River keeps them in a VectorDict with no public setter
    if clear:
        store.clear()
    for feature, w in weights.items():
        store[feature] = w
