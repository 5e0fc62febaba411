"""User vectors remembered by the exact item sequence the model reads.

A user's deep representation depends only on the (collapsed, truncated) sequence of known items
the model encodes. Many events leave it unchanged: a click or an add-to-cart after a view of the
same item (repeats collapse), an item the model does not know yet, a user with the same short
history as another. :class:`VectorCache` keeps the vectors of the most recently used sequences in
one preallocated tensor (a slot per sequence, least recently used evicted first), so a batch
computes only the sequences it has not seen, deduplicated, in one forward pass.

>>> import torch
>>> calls = []
>>> def compute(keys):
...     calls.append(list(keys))
...     return torch.tensor([[float(sum(k)), float(len(k))] for k in keys])
>>> cache = VectorCache(capacity=8)
>>> cache.vectors([(1, 2), (3,), (1, 2)], compute).tolist()
[[3.0, 2.0], [3.0, 1.0], [3.0, 2.0]]
>>> cache.vectors([(3,), (4, 5)], compute).tolist(), calls
([[3.0, 1.0], [9.0, 2.0]], [[(1, 2), (3,)], [(4, 5)]])
>>> cache.asked, cache.computed            # 5 vectors served, 3 computed
(5, 3)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch

Key = tuple[int, ...]


class VectorCache:
    """The vectors of the last ``capacity`` distinct sequences (one model's: a new model, a new cache)."""

    def __init__(self, capacity: int = 32768) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self.slots: OrderedDict[Key, int] = OrderedDict()
        self.buffer: torch.Tensor | None = None
        self.asked = 0
        """Vectors asked for."""
        self.computed = 0
        """Of those, sequences computed (the rest came from the cache or repeated one in the same call)."""

    def vectors(self, keys: Sequence[Key], compute: Callable[[list[Key]], torch.Tensor]) -> torch.Tensor:
        """``[len(keys), dim]``: cached rows, and ``compute(new keys)`` (each once) for the rest."""
        if 2 * len(keys) > self.capacity:  # a slot used by this call could be evicted by it: no caching
            self.asked += len(keys)
            self.computed += len(keys)
            return compute(list(keys))
        slots = self.slots
        rows: list[int] = [0] * len(keys)
        missing: dict[Key, list[int]] = {}
        for r, key in enumerate(keys):
            s = slots.get(key)
            if s is None:
                missing.setdefault(key, []).append(r)
            else:
                slots.move_to_end(key)
                rows[r] = s
        self.asked += len(keys)
        self.computed += len(missing)
        if missing:
            new = list(missing)
            computed = compute(new)
            if self.buffer is None:
                self.buffer = torch.zeros((self.capacity, computed.shape[1]), dtype=computed.dtype)
            fresh: list[int] = []
            for key in new:
                if len(slots) < self.capacity:
                    s = len(slots)
                else:  # the least recently used: never one of this call's (they were all moved to the end)
                    _, s = slots.popitem(last=False)
                slots[key] = s
                fresh.append(s)
                for r in missing[key]:
                    rows[r] = s
            self.buffer[fresh] = computed
        assert self.buffer is not None
        return self.buffer[rows]
