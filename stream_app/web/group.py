"""The whole group's time series for the dashboard: every worker's samples merged on one clock.

Each worker samples its own counters once a second on its own timer, so the series of two
workers are neither aligned nor equally long. :func:`merge_series` puts them on a grid of whole
seconds and then

- adds up the rates (events, recommendations, dead letters per second): each worker's rates are
  turned back into a running count, read at the grid seconds by linear interpolation and
  differenced, so no event is counted twice or lost however the clocks fall;
- adds up the lag (a gauge: a worker's value at second ``g`` is its latest sample in
  ``(g - HOLD_S, g]``, as for the figures below);
- takes the slowest worker's latency percentiles (percentiles of different workers cannot be
  added, and the slowest one is what an operator has to act on);
- averages live quality over the workers weighted by the lists each has judged.

Pure functions over the JSON the workers exchange (``/api/stats?scope=peer``); no Faust here.

>>> a = {"series": {"t": [10.2, 11.2, 12.2], "events_s": [4.0, 4.0, 4.0], "p99_ms": [2.0, 3.0, 2.0]},
...      "partition_lag": {"0": [5, 4, 3]}, "quality": {"judged": 30, "hr@10": 0.2}}
>>> b = {"series": {"t": [10.7, 11.7, 12.7], "events_s": [1.0, 1.0, 1.0], "p99_ms": [9.0, 1.0, 1.0]},
...      "partition_lag": {"1": [1, 0, 0]}, "quality": {"judged": 10, "hr@10": 0.6}}
>>> g = merge_series([a, b])
>>> g["t"], g["events_s"], g["p99_ms"], g["lag_total"]
([11.0, 12.0], [5.0, 5.0], [9.0, 3.0], [6, 4])
>>> merge_quality([a["quality"], b["quality"]])["hr@10"]
0.3
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

HOLD_S = 1.5
"""How long a worker's sample stands for it on the grid (its timer fires about once a second)."""
SUMMED = ("events_s", "recs_s", "dlq_s")
SLOWEST = ("p50_ms", "p95_ms", "p99_ms")
WEIGHTED = ("hr@10", "ndcg@10")
QUALITY_FIGURES = ("hr@10", "ndcg@10", "ctr", "conversion", "returning_rate")
QUALITY_DENOMINATORS = {"hr@10": "judged", "ndcg@10": "judged", "ctr": "clicks", "conversion": "purchases",
                        "returning_rate": "events"}
"""What each live figure is a share of (see :meth:`stream_app.core.live.LiveQuality.snapshot`)."""


def peer_part(snapshot: Mapping[str, Any], quality: Mapping[str, Any], since: float | None) -> dict[str, Any]:
    """What one worker contributes to the group's series: its samples after ``since`` (all if None).

    ``snapshot`` is :meth:`StatsCollector.snapshot` (``series`` and per-partition ``lag``); the
    lag by partition goes out as ``partition_lag``, beside the summary's total ``lag``.

    >>> snap = {"series": {"t": [1.0, 2.0], "events_s": [3.0, 4.0], "queue": [0, 0]}, "lag": {"2": [7, 6]}}
    >>> peer_part(snap, {"judged": 1}, since=1.0)
    {'series': {'t': [2.0], 'events_s': [4.0]}, 'partition_lag': {'2': [6]}, 'quality': {'judged': 1}}
    """
    series = snapshot.get("series") or {}
    t = list(series.get("t") or [])
    start = 0 if since is None else next((i for i, v in enumerate(t) if v > since), len(t))
    names = [n for n in (*SUMMED, *SLOWEST, *WEIGHTED) if n in series]
    return {
        "series": {"t": t[start:], **{n: list(series[n][start:]) for n in names}},
        "partition_lag": {p: list(v[start:]) for p, v in (snapshot.get("lag") or {}).items()},
        "quality": dict(quality),
    }


def _held(t: Sequence[float], values: Sequence[Any], grid: Sequence[int]) -> list[Any]:
    """``values`` sampled at ``t`` (ascending), read at each grid second: the latest within HOLD_S."""
    out: list[Any] = []
    i = -1
    for g in grid:
        while i + 1 < len(t) and t[i + 1] <= g:
            i += 1
        out.append(values[i] if i >= 0 and g - t[i] < HOLD_S and i < len(values) else None)
    return out


def _rates(t: Sequence[float], rates: Sequence[Any], grid: Sequence[int]) -> list[float | None]:
    """Per-second rates over ``(g - 1, g]`` for each grid second, from a worker's samples.

    A sample at ``t[k]`` holds the rate over the interval since the previous one (the first
    covers the second before it). Outside the worker's samples: None.

    >>> _rates([10.5, 11.5, 12.5], [2.0, 4.0, 6.0], [11, 12, 13])
    [3.0, 5.0, None]
    """
    if not t:
        return [None] * len(grid)
    edges = [t[0] - 1.0, *t]
    counts = [0.0]
    for k, r in enumerate(rates[:len(t)]):
        counts.append(counts[-1] + float(r or 0.0) * (edges[k + 1] - edges[k]))

    def count_at(x: float) -> float | None:
        if x < edges[0] or x > edges[-1]:
            return None
        k = bisect.bisect_left(edges, x)
        if edges[k] == x:
            return counts[k]
        lo, hi = edges[k - 1], edges[k]
        return counts[k - 1] + (counts[k] - counts[k - 1]) * (x - lo) / (hi - lo)

    out: list[float | None] = []
    for g in grid:
        a, b = count_at(g - 1.0), count_at(float(g))
        out.append(None if a is None or b is None else round(b - a, 3))
    return out


def _present(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def merge_series(parts: Sequence[Mapping[str, Any]], since: float | None = None) -> dict[str, Any]:
    """The group's series on whole seconds after ``since``: ``t``, the rates, latencies, quality,
    ``lag_total`` and ``lag`` by partition (a partition reported by two workers during a rebalance
    counts once, with the larger lag)."""
    times = [float(x) for p in parts for x in (p.get("series") or {}).get("t") or []]
    if not times:
        return {"t": [], **{n: [] for n in (*SUMMED, *SLOWEST, *WEIGHTED)}, "lag_total": [], "lag": {}}
    first = math.floor(min(times)) + 1
    if since is not None:
        first = max(first, math.floor(since) + 1)
    # up to the second every worker has sampled past: a later one would miss the slower workers
    newest = [max(float(x) for x in ts) for p in parts if (ts := (p.get("series") or {}).get("t"))]
    grid = list(range(first, math.floor(min(newest)) + 1))
    held: list[dict[str, list[Any]]] = []
    weights: list[float] = []
    lag: dict[str, list[int | None]] = {}
    for p in parts:
        s = p.get("series") or {}
        t = [float(x) for x in s.get("t") or []]
        held.append({**{n: _held(t, s[n], grid) for n in (*SLOWEST, *WEIGHTED) if n in s},
                     **{n: _rates(t, s[n], grid) for n in SUMMED if n in s}})
        weights.append(float((p.get("quality") or {}).get("judged") or 0))
        for part, values in (p.get("partition_lag") or {}).items():
            mine = _held(t, values, grid)
            have = lag.setdefault(str(part), [None] * len(grid))
            for i, v in enumerate(mine):
                if v is not None and (have[i] is None or v > (have[i] or 0)):
                    have[i] = v
    out: dict[str, Any] = {"t": [float(g) for g in grid]}
    for name in (*SUMMED, *SLOWEST, *WEIGHTED):
        column: list[float | None] = []
        for i in range(len(grid)):
            vals = [(h[name][i], w) for h, w in zip(held, weights, strict=True) if name in h and h[name][i] is not None]
            if not vals:
                column.append(None)
            elif name in SUMMED:
                column.append(round(sum(float(v) for v, _ in vals), 3))
            elif name in SLOWEST:
                column.append(max(_present(v for v, _ in vals), default=None))
            else:
                column.append(_weighted(vals))
        out[name] = column
    out["lag_total"] = [
        None if all(v[i] is None for v in lag.values()) else sum(v[i] or 0 for v in lag.values())
        for i in range(len(grid))
    ] if lag else [None] * len(grid)
    out["lag"] = {p: lag[p] for p in sorted(lag, key=lambda k: (len(k), k))}
    return out


def _weighted(values: Sequence[tuple[Any, float]]) -> float | None:
    """Mean of ``(value, weight)`` pairs by weight (a plain mean when no weight is known)."""
    pairs = [(float(v), w) for v, w in values if v is not None]
    if not pairs:
        return None
    total = sum(w for _, w in pairs)
    if total <= 0:
        return round(sum(v for v, _ in pairs) / len(pairs), 6)
    return round(sum(v * w for v, w in pairs) / total, 6)


def _weight(quality: Mapping[str, Any], denominator: str) -> float:
    got = quality.get(denominator)
    return float(got if got is not None else quality.get("judged") or 0)


def merge_quality(qualities: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The group's live quality, exact: each figure is the mean of the workers' figures weighted
    by its own denominator (lists judged for HR@10 and NDCG@10, clicks for click-through,
    purchases for conversion, events for the returning-user rate), which is the figure over all
    their counts together. A worker that does not report a denominator is weighted by its lists
    judged.

    >>> merge_quality([{"judged": 1, "ndcg@10": 1.0}, {"judged": 3, "ndcg@10": 0.0}, {}])
    {'judged': 4, 'hr@10': None, 'ndcg@10': 0.25, 'ctr': None, 'conversion': None, 'returning_rate': None, \
'clicks': 0, 'purchases': 0, 'events': 0}
    """
    qs = [q for q in qualities if q]
    out: dict[str, Any] = {"judged": int(sum(q.get("judged") or 0 for q in qs))}
    for name in QUALITY_FIGURES:
        by = QUALITY_DENOMINATORS[name]
        out[name] = _weighted([(q.get(name), _weight(q, by)) for q in qs if q.get(name) is not None])
    for by in ("clicks", "purchases", "events"):
        out[by] = int(sum(q.get(by) or 0 for q in qs))
    return out
