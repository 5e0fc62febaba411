"""What an experiment's live sums say: per variant figures with 95% intervals, and the
interleaving preference.

The sums come from :meth:`stream_app.core.live.LiveQuality.variants` (one worker) or from
:func:`merge` over a group's workers (sums add exactly). The intervals treat each judged list
(each click, each purchase) as independent; a user's lists are not quite, so read an interval
as a little narrower than the truth on streams of few, very active users.

* HR@10, click-through and conversion are shares: Wilson score intervals.
* NDCG@10 is a mean: mean ± 1.96 standard errors.
* An interleaved variant's preference: of the interactions with an item of the interleaved list
  that one team contributed, the share that went to the second variant (``b``), with its Wilson
  interval and a two-sided sign-test p-value; ``delta`` is (b - a) over every judged interaction,
  ties (items from neither team's share) included, as usual for team-draft interleaving.

>>> sums = {"judged": 400, "hits": 100, "ndcg": 40.0, "ndcg_sq": 12.0, "clicks": 50, "clicks_on_recs": 20,
...         "purchases": 0, "purchases_of_recs": 0, "events": 420, "returning": 400,
...         "team_a": 30, "team_b": 70, "ties": 300}
>>> r = report(sums)
>>> r["hr@10"]["value"], round(r["hr@10"]["low"], 3), round(r["hr@10"]["high"], 3)
(0.25, 0.21, 0.295)
>>> r["conversion"]["value"] is None
True
>>> r["interleaving"]["winner"], round(r["interleaving"]["p_value"], 5)
('b', 0.0001)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

Z95 = 1.959964


def wilson(k: float, n: float, z: float = Z95) -> dict[str, float | None]:
    """A share ``k / n`` with its Wilson score interval (all None when ``n`` is 0)."""
    if n <= 0:
        return {"value": None, "low": None, "high": None}
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return {"value": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half)}


def mean_interval(total: float, total_sq: float, n: float, z: float = Z95) -> dict[str, float | None]:
    """The mean of ``n`` values from their sum and sum of squares, ± ``z`` standard errors."""
    if n <= 0:
        return {"value": None, "low": None, "high": None}
    mean = total / n
    var = max(0.0, total_sq / n - mean * mean) * (n / (n - 1) if n > 1 else 0.0)
    half = z * math.sqrt(var / n)
    return {"value": mean, "low": mean - half, "high": mean + half}


def sign_test(a: int, b: int) -> float:
    """Two-sided p-value that ``a`` and ``b`` wins come from a fair coin (normal approximation with
    continuity correction above 50 trials, exact below)."""
    n = a + b
    if n == 0:
        return 1.0
    if n <= 50:
        tail = sum(math.comb(n, i) for i in range(0, min(a, b) + 1)) / 2.0**n
        return min(1.0, 2 * tail)
    zs = (abs(a - b) - 1) / math.sqrt(n)
    return min(1.0, math.erfc(max(0.0, zs) / math.sqrt(2)))


def interleaving(a: int, b: int, ties: int, alpha: float = 0.05) -> dict[str, Any]:
    """The team-draft preference statistic of ``a`` and ``b`` wins and ``ties``."""
    n = a + b + ties
    share = wilson(b, a + b)
    p = sign_test(a, b)
    winner = None
    if p < alpha and a != b:
        winner = "b" if b > a else "a"
    return {"a": a, "b": b, "ties": ties, "delta": (b - a) / n if n else None, "share_b": share,
            "p_value": p, "winner": winner}


def report(sums: Mapping[str, float]) -> dict[str, Any]:
    """One variant's figures with their intervals, from its sums."""
    g = sums.get
    judged = g("judged", 0)
    out: dict[str, Any] = {
        "events": int(g("events", 0)),
        "judged": int(judged),
        "hr@10": wilson(g("hits", 0), judged),
        "ndcg@10": mean_interval(g("ndcg", 0.0), g("ndcg_sq", 0.0), judged),
        "ctr": wilson(g("clicks_on_recs", 0), g("clicks", 0)),
        "conversion": wilson(g("purchases_of_recs", 0), g("purchases", 0)),
        "clicks": int(g("clicks", 0)),
        "purchases": int(g("purchases", 0)),
    }
    if g("team_a", 0) or g("team_b", 0) or g("ties", 0):
        out["interleaving"] = interleaving(int(g("team_a", 0)), int(g("team_b", 0)), int(g("ties", 0)))
    return out


def merge(per_worker: Iterable[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """A group's sums per variant: each worker's added up.

    >>> merge([{"x": {"judged": 2, "hits": 1}}, {"x": {"judged": 3, "hits": 0}, "y": {"judged": 1}}])
    {'x': {'judged': 5, 'hits': 1}, 'y': {'judged': 1}}
    """
    out: dict[str, dict[str, float]] = {}
    for variants in per_worker:
        for name, sums in (variants or {}).items():
            acc = out.setdefault(name, {})
            for key, value in sums.items():
                acc[key] = acc.get(key, 0) + value
    return out


def experiment_view(name: str | None, variants: Mapping[str, Any], sums: Mapping[str, Mapping[str, float]]
                    ) -> dict[str, Any] | None:
    """What the dashboard and ``/stats`` show of an experiment: every variant's report (in the
    experiment's order, variants without a judged list included) and which variants an
    interleaved one compares. None without an experiment."""
    if name is None:
        return None
    rows = []
    for vname, spec in variants.items():
        row = {"variant": vname, **spec, **report(sums.get(vname, {}))}
        rows.append(row)
    return {"name": name, "variants": rows}
