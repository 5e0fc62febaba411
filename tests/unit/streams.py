"""A small synthetic interaction stream and the worker-style replay the model tests learn from.

Both live in :mod:`models` (:mod:`models.datasets`, :mod:`models.checks`) so the model checks can
use them; the tests import them from here.

>>> events = synthetic_stream(n=5)
>>> len(events), events[0].ts
(5, 1000.0)
"""

from __future__ import annotations

from models.checks import replay
from models.datasets import TYPES, synthetic_stream

__all__ = ["TYPES", "replay", "synthetic_stream"]
