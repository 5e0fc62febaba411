"""Business rules over a ranked list: what may be shown, what is lifted, how many per category.

One :class:`ListFilter` is applied wherever a list is made (lists pushed by the worker, lists on
request, and the evaluation's), so what is measured is what is served. In order:

1. **blocked**: items the catalogue says are unavailable or expired are dropped, and so are items
   outside the rules: an excluded category or label, a price outside ``[price_min, price_max]``
   (items without a price pass), and, with ``catalogued_only``, every item the catalogue does
   not know;
2. **boosts**: ``boost_labels[label]`` is added to the score of every item with that label (scores
   are the reranker's, a few units wide), and the list is sorted again;
3. **diversity**: at most ``max_per_category`` items of one category (0: no cap; items without
   a category are not capped);
4. the best ``k`` are kept.

The ranker is asked for :meth:`ListFilter.fetch` candidates (more than ``k``) so that a list
stays full when some are dropped.

>>> from schemas.items import Item
>>> from models.filters.catalogue import ItemCatalogue
>>> cat = ItemCatalogue()
>>> for it in [Item("a", category="x"), Item("b", category="x"), Item("c", available=False),
...            Item("d", category="y", labels=("sale",))]:
...     cat.update(it)
>>> f = ListFilter(cat, Rules(max_per_category=1, boost_labels={"sale": 1.0}))
>>> [i for i, _, _ in f.apply([("a", 3.0, "s"), ("b", 2.5, "s"), ("c", 2.0, "s"), ("d", 1.0, "s"), ("e", 0.5, "s")], 10, 0.0)]
['a', 'd', 'e']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.filters.catalogue import ItemCatalogue
from models.jsonfile import read_json

Sourced = tuple[str, float, str]
"""A ranked candidate: item id, score, the source it came from."""


class RulesError(ValueError):
    """A rules file that cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class Rules:
    exclude_categories: frozenset[str] = frozenset()
    exclude_labels: frozenset[str] = frozenset()
    boost_labels: dict[str, float] = field(default_factory=dict)
    max_per_category: int = 0
    price_min: float | None = None
    price_max: float | None = None
    catalogued_only: bool = False

    @property
    def active(self) -> bool:
        return bool(self.exclude_categories or self.exclude_labels or self.boost_labels or self.max_per_category
                    or self.price_min is not None or self.price_max is not None or self.catalogued_only)

    @classmethod
    def from_dict(cls, data: Any, where: str = "rules") -> Rules:
        """Rules from parsed JSON (unknown keys and wrong types are errors, not ignored).

        >>> Rules.from_dict({"max_per_category": 2, "exclude_labels": ["adult"]}).max_per_category
        2
        >>> Rules.from_dict({"max_per_categry": 2})
        Traceback (most recent call last):
        ...
        models.filters.rules.RulesError: rules: unknown entry 'max_per_categry'; known: boost_labels, catalogued_only, exclude_categories, exclude_labels, max_per_category, price_max, price_min
        """
        known = sorted(cls.__dataclass_fields__)
        if not isinstance(data, dict):
            raise RulesError(f"{where}: expected a JSON object with some of {', '.join(known)}")
        for key in data:
            if key not in known:
                raise RulesError(f"{where}: unknown entry {key!r}; known: {', '.join(known)}")

        def strings(key: str) -> frozenset[str]:
            v = data.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise RulesError(f"{where}: {key} must be a list of non-empty strings")
            return frozenset(v)

        def number(key: str) -> float | None:
            v = data.get(key)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise RulesError(f"{where}: {key} must be a number >= 0, got {v!r}")
            return float(v)

        boosts = data.get("boost_labels", {})
        if not isinstance(boosts, dict) or not all(
                isinstance(k, str) and k and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for k, v in boosts.items()):
            raise RulesError(f"{where}: boost_labels must map labels to finite numbers")
        cap = data.get("max_per_category", 0)
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise RulesError(f"{where}: max_per_category must be a whole number >= 0 (0: no cap), got {cap!r}")
        only = data.get("catalogued_only", False)
        if not isinstance(only, bool):
            raise RulesError(f"{where}: catalogued_only must be true or false")
        lo, hi = number("price_min"), number("price_max")
        if lo is not None and hi is not None and lo > hi:
            raise RulesError(f"{where}: price_min {lo} is above price_max {hi}")
        return cls(strings("exclude_categories"), strings("exclude_labels"),
                   {k: float(v) for k, v in boosts.items()}, cap, lo, hi, only)

    @classmethod
    def from_file(cls, path: Path, catalogued_only: bool = False) -> Rules:
        """Rules from a JSON file (``STREAMREC_RULES_FILE``); ``catalogued_only`` may come from settings."""
        data = read_json(path, "rules", "STREAMREC_RULES_FILE", RulesError)
        rules = cls.from_dict(data, str(path))
        if catalogued_only and not rules.catalogued_only:
            rules = cls(**{**rules.__dict__, "catalogued_only": True})
        return rules


class ListFilter:
    """The catalogue and the rules, applied to ranked lists of ``(item_id, score, ...)`` tuples."""

    def __init__(self, catalogue: ItemCatalogue | None = None, rules: Rules | None = None) -> None:
        self.catalogue = catalogue if catalogue is not None else ItemCatalogue()
        self.rules = rules if rules is not None else Rules()
        self.dropped = 0
        """Candidates dropped so far (blocked, or outside the rules)."""

    @property
    def active(self) -> bool:
        return self.rules.active or len(self.catalogue) > 0

    def fetch(self, k: int) -> int:
        """How many candidates to rank so that ``k`` are left after filtering."""
        return k + max(20, 2 * k) if self.active else k

    def allowed(self, item_id: str, now: float) -> bool:
        cat, r = self.catalogue, self.rules
        if cat.blocked(item_id, now):
            return False
        if r.catalogued_only and item_id not in cat:
            return False
        if r.exclude_categories and cat.category(item_id) in r.exclude_categories:
            return False
        if r.exclude_labels and not r.exclude_labels.isdisjoint(cat.labels(item_id)):
            return False
        if r.price_min is not None or r.price_max is not None:
            p = cat.price(item_id)
            if p is not None and ((r.price_min is not None and p < r.price_min)
                                  or (r.price_max is not None and p > r.price_max)):
                return False
        return True

    def apply(self, ranked: Sequence[Sourced], k: int, now: float) -> list[Sourced]:
        """The best ``k`` of ``ranked`` (best first) that the rules allow, boosted and capped."""
        if not self.active:
            return list(ranked[:k])
        kept = [c for c in ranked if self.allowed(c[0], now)]
        self.dropped += len(ranked) - len(kept)
        r, cat = self.rules, self.catalogue
        if r.boost_labels:
            boosted: list[Sourced] = []
            for c in kept:
                lift = sum(r.boost_labels.get(lab, 0.0) for lab in cat.labels(c[0]))
                boosted.append((c[0], c[1] + lift, c[2]) if lift else c)
            kept = sorted(boosted, key=lambda c: -c[1])  # stable: ties keep the ranker's order
        if r.max_per_category:
            seen: dict[str, int] = {}
            capped: list[Sourced] = []
            for c in kept:
                g = cat.category(c[0])
                if g is not None:
                    if seen.get(g, 0) >= r.max_per_category:
                        continue
                    seen[g] = seen.get(g, 0) + 1
                capped.append(c)
                if len(capped) == k:
                    break
            kept = capped
        return kept[:k]
