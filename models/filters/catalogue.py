"""What the shop says about its items, kept compact: availability, expiry, category, labels, price.

Every worker holds the whole catalogue (it reads every partition of the ``items`` topic), so it is
stored in flat arrays indexed by an interned item number rather than one object per item: about
a dict entry plus 25 bytes per item, and labels only for the items that have them (see
``docs/BENCHMARKS.md`` for the measured bytes per item). An item the catalogue has never heard
of is unknown, not blocked: the catalogue is optional.

>>> from schemas.items import Item
>>> cat = ItemCatalogue()
>>> cat.update(Item("i-1", available=False))
>>> cat.update(Item("i-2", category="shoes", labels=("sale",), price=20.0, expires_at=100.0))
>>> cat.blocked("i-1", now=0.0), cat.blocked("i-2", now=50.0), cat.blocked("i-2", now=100.0), cat.blocked("i-9", 0.0)
(True, False, True, False)
>>> cat.category("i-2"), cat.labels("i-2"), cat.price("i-2"), len(cat)
('shoes', ('sale',), 20.0, 2)
>>> cat.remove("i-1"); "i-1" in cat, len(cat)
(False, 1)
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from schemas.items import Item

_NONE = -1


class ItemCatalogue:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self._known = array("B")
        self._available = array("B")
        self._category = array("i")
        self._price = array("f")
        self._expires = array("d")
        self._created = array("d")
        self._labels: dict[int, tuple[int, ...]] = {}
        self._names: list[str] = []
        """Interned category and label names (one list: both are short strings)."""
        self._name_ids: dict[str, int] = {}
        self.size = 0
        self.updates = 0

    def _intern(self, name: str) -> int:
        i = self._name_ids.get(name)
        if i is None:
            i = self._name_ids[name] = len(self._names)
            self._names.append(name)
        return i

    def _slot(self, item_id: str) -> int:
        i = self.ids.get(item_id)
        if i is None:
            i = self.ids[item_id] = len(self._known)
            self._known.append(0)
            self._available.append(1)
            self._category.append(_NONE)
            self._price.append(math.nan)
            self._expires.append(math.inf)
            self._created.append(math.nan)
        return i

    def update(self, item: Item) -> None:
        """Replace what is known of ``item.item_id`` with ``item``."""
        i = self._slot(item.item_id)
        if not self._known[i]:
            self._known[i] = 1
            self.size += 1
        self._available[i] = 1 if item.available else 0
        self._category[i] = _NONE if item.category is None else self._intern(item.category)
        self._price[i] = math.nan if item.price is None else item.price
        self._expires[i] = math.inf if item.expires_at is None else item.expires_at
        self._created[i] = math.nan if item.created_at is None else item.created_at
        if item.labels:
            self._labels[i] = tuple(self._intern(x) for x in item.labels)
        else:
            self._labels.pop(i, None)
        self.updates += 1

    def remove(self, item_id: str) -> None:
        """Forget an item's metadata (a tombstone): it is unknown again."""
        i = self.ids.get(item_id)
        if i is not None and self._known[i]:
            self._known[i] = 0
            self._available[i] = 1
            self._category[i] = _NONE
            self._price[i] = math.nan
            self._expires[i] = math.inf
            self._labels.pop(i, None)
            self.size -= 1
        self.updates += 1

    def __len__(self) -> int:
        return self.size

    def __contains__(self, item_id: object) -> bool:
        i = self.ids.get(item_id) if isinstance(item_id, str) else None
        return i is not None and bool(self._known[i])

    def blocked(self, item_id: str, now: float) -> bool:
        """Whether the shop said the item must not be shown now (unavailable or expired)."""
        i = self.ids.get(item_id)
        return i is not None and (not self._available[i] or self._expires[i] <= now)

    def category(self, item_id: str) -> str | None:
        i = self.ids.get(item_id)
        if i is None or self._category[i] == _NONE:
            return None
        return self._names[self._category[i]]

    def labels(self, item_id: str) -> tuple[str, ...]:
        i = self.ids.get(item_id)
        if i is None:
            return ()
        return tuple(self._names[x] for x in self._labels.get(i, ()))

    def price(self, item_id: str) -> float | None:
        i = self.ids.get(item_id)
        if i is None or math.isnan(self._price[i]):
            return None
        return float(self._price[i])

    def describe(self, item_id: str) -> dict[str, Any] | None:
        """What is known of an item, as the item record has it (None when unknown)."""
        if item_id not in self:
            return None
        i = self.ids[item_id]
        return {
            "item_id": item_id, "available": bool(self._available[i]), "category": self.category(item_id),
            "labels": list(self.labels(item_id)), "price": self.price(item_id),
            "expires_at": None if math.isinf(self._expires[i]) else self._expires[i],
            "created_at": None if math.isnan(self._created[i]) else self._created[i],
        }
