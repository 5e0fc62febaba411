"""Rolling time series of one worker for its dashboard: pure Python, no Faust, no Kafka.

Every second the dashboard's timer hands the collector a :class:`Reading` (cumulative counters
and gauges as they stand); the collector turns the difference from the previous reading into one
:class:`Sample` (rates per second, milliseconds per batch, latency percentiles of the interval)
and keeps the last ``window_s`` seconds of them in a ring. Latencies come from a bounded
:class:`LatencyReservoir` that the scorer feeds once per micro-batch.

>>> c = StatsCollector(window_s=60, interval_s=1.0)
>>> c.sample(Reading(t=100.0, ingested=0, scored=0, batches=0, busy_s=0.0))  # the baseline
>>> c.latencies.extend([0.001, 0.002, 0.003, 0.004])
>>> point = c.sample(Reading(t=101.0, ingested=50, scored=40, batches=4, busy_s=0.02, dlq={"schema": 2}))
>>> s = c.snapshot()
>>> s["series"]["events_s"], s["series"]["recs_s"], s["series"]["batch_ms"], s["series"]["dlq_s"]
([50.0], [40.0], [5.0], [2.0])
>>> s["latency_ms"]["p50"], s["dlq"]
(2.5, {'schema': 2})
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LatencyReservoir", "Reading", "Sample", "StatsCollector", "percentile"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values`` with linear interpolation; None if empty.

    >>> percentile([4.0, 1.0, 3.0, 2.0], 50), percentile([1.0, 2.0, 3.0], 100), percentile([], 99)
    (2.5, 3.0, None)
    """
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile must be within 0..100, got {q!r}")
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class LatencyReservoir:
    """The most recent ``size`` latencies (seconds) and how many were ever recorded.

    >>> r = LatencyReservoir(size=3)
    >>> r.extend([1.0, 2.0]); r.extend([3.0, 4.0])
    >>> r.total, r.recent(), r.since(2)
    (4, [2.0, 3.0, 4.0], [3.0, 4.0])
    """

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError(f"reservoir size must be at least 1, got {size}")
        self._ring: deque[float] = deque(maxlen=size)
        self.total = 0

    def extend(self, values: list[float]) -> None:
        """Record a batch of latencies in seconds (one call per micro-batch)."""
        self._ring.extend(values)
        self.total += len(values)

    def recent(self) -> list[float]:
        return list(self._ring)

    def since(self, mark: int) -> list[float]:
        """Latencies recorded after ``total`` was ``mark`` (only those still in the ring)."""
        n = min(max(self.total - mark, 0), len(self._ring))
        if n == 0:
            return []
        ring = self._ring
        return [ring[i] for i in range(len(ring) - n, len(ring))]

    def __len__(self) -> int:
        return len(self._ring)


@dataclass(slots=True)
class Reading:
    """Cumulative counters and current gauges of a worker at wall-clock time ``t``."""

    t: float
    ingested: int = 0
    """Records the ingest agent has handled (valid, invalid or failed)."""
    scored: int = 0
    """Recommendation messages the scorer has sent."""
    batches: int = 0
    busy_s: float = 0.0
    """Seconds the scorer spent learning and ranking, summed over its batches."""
    ingest_ms: float | None = None
    """Typical time the ingest agent spends on one record (milliseconds), if known."""
    queue: int = 0
    lag: dict[int, int] = field(default_factory=dict)
    dlq: dict[str, int] = field(default_factory=dict)
    """Dead-lettered records by reason (cumulative)."""
    quality: dict[str, float] = field(default_factory=dict)
    """Live quality figures (``judged``, ``hr@10``, ``ndcg@10``, ...); empty when unknown."""


@dataclass(slots=True)
class Sample:
    """One point of every series: what happened between two readings."""

    t: float
    events_s: float
    recs_s: float
    dlq_s: float
    batch_ms: float | None
    busy_pct: float
    ingest_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    queue: int
    lag: dict[int, int]
    hr: float | None
    ndcg: float | None


SERIES = ("events_s", "recs_s", "dlq_s", "batch_ms", "busy_pct", "ingest_ms", "p50_ms", "p95_ms", "p99_ms",
          "queue")


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000.0, 3)


class StatsCollector:
    """Keeps the last ``window_s`` seconds of samples taken every ``interval_s`` seconds.

    Counters that go backwards (a reset) count as no change rather than a negative rate.
    """

    def __init__(self, window_s: float = 600.0, interval_s: float = 1.0,
                 latencies: LatencyReservoir | None = None) -> None:
        if interval_s <= 0 or window_s < interval_s:
            raise ValueError(f"need 0 < interval_s <= window_s, got interval_s={interval_s}, window_s={window_s}")
        self.window_s = window_s
        self.interval_s = interval_s
        self.samples: deque[Sample] = deque(maxlen=max(1, round(window_s / interval_s)))
        self.latencies = latencies if latencies is not None else LatencyReservoir()
        self.last: Reading | None = None
        self._mark = self.latencies.total

    def sample(self, r: Reading) -> Sample | None:
        """Take one reading; return the new sample (None for the first reading or a clock step back)."""
        prev, self.last = self.last, r
        fresh = self.latencies.since(self._mark)
        self._mark = self.latencies.total
        if prev is None:
            return None
        dt = r.t - prev.t
        if dt <= 0:
            return None

        def rate(now: float, before: float) -> float:
            return round(max(now - before, 0) / dt, 3)

        batches = r.batches - prev.batches
        busy = max(r.busy_s - prev.busy_s, 0.0)
        dlq_delta = sum(max(v - prev.dlq.get(k, 0), 0) for k, v in r.dlq.items())
        quality = r.quality or {}
        judged = quality.get("judged", 0)
        s = Sample(
            t=r.t,
            events_s=rate(r.ingested, prev.ingested),
            recs_s=rate(r.scored, prev.scored),
            dlq_s=round(dlq_delta / dt, 3),
            batch_ms=round(busy / batches * 1000.0, 3) if batches > 0 else None,
            busy_pct=round(min(busy / dt, 1.0) * 100.0, 2),
            ingest_ms=r.ingest_ms if r.ingested > prev.ingested else None,
            p50_ms=_ms(percentile(fresh, 50)),
            p95_ms=_ms(percentile(fresh, 95)),
            p99_ms=_ms(percentile(fresh, 99)),
            queue=r.queue,
            lag=dict(r.lag),
            hr=quality.get("hr@10") if judged else None,
            ndcg=quality.get("ndcg@10") if judged else None,
        )
        self.samples.append(s)
        return s

    def latency_summary(self) -> dict[str, Any]:
        """Percentiles (ms) over the reservoir's recent latencies."""
        recent = self.latencies.recent()
        return {"p50": _ms(percentile(recent, 50)), "p95": _ms(percentile(recent, 95)),
                "p99": _ms(percentile(recent, 99)), "count": len(recent), "total": self.latencies.total}

    def current(self) -> dict[str, Any]:
        """The latest sample and totals, small enough to fetch from every peer each second."""
        last = self.samples[-1] if self.samples else None
        r = self.last
        lag = last.lag if last else {}
        return {
            "t": last.t if last else None,
            "events_s": last.events_s if last else 0.0,
            "recs_s": last.recs_s if last else 0.0,
            "dlq_s": last.dlq_s if last else 0.0,
            "p99_ms": last.p99_ms if last else None,
            "batch_ms": last.batch_ms if last else None,
            "lag": sum(lag.values()),
            "ingested": r.ingested if r else 0,
            "scored": r.scored if r else 0,
            "dlq_total": sum(r.dlq.values()) if r else 0,
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything the dashboard draws, as JSON-ready lists aligned on ``series["t"]``."""
        samples = list(self.samples)
        series: dict[str, list[Any]] = {"t": [round(s.t, 3) for s in samples]}
        for name in SERIES:
            series[name] = [getattr(s, name) for s in samples]
        series["lag_total"] = [sum(s.lag.values()) for s in samples]
        series["hr@10"] = [s.hr for s in samples]
        series["ndcg@10"] = [s.ndcg for s in samples]
        partitions = sorted({p for s in samples for p in s.lag})
        lag = {str(p): [s.lag.get(p) for s in samples] for p in partitions}
        r = self.last
        return {
            "window_s": self.window_s,
            "interval_s": self.interval_s,
            "series": series,
            "lag": lag,
            "latency_ms": self.latency_summary(),
            "dlq": dict(sorted(r.dlq.items(), key=lambda kv: (-kv[1], kv[0]))) if r else {},
            "current": self.current(),
        }

    @staticmethod
    def totals(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Sum the :meth:`current` figures of several workers (p99 is the worst of them).

        >>> StatsCollector.totals([{"events_s": 2.0, "recs_s": 1.0, "lag": 3, "p99_ms": 4.0},
        ...                        {"events_s": 1.5, "recs_s": 1.0, "lag": 0, "p99_ms": None}])["events_s"]
        3.5
        """
        out: dict[str, Any] = {"events_s": 0.0, "recs_s": 0.0, "dlq_s": 0.0, "lag": 0, "ingested": 0,
                               "scored": 0, "dlq_total": 0, "p99_ms": None, "workers": 0}
        for s in summaries:
            out["workers"] += 1
            for k in ("events_s", "recs_s", "dlq_s", "lag", "ingested", "scored", "dlq_total"):
                out[k] += s.get(k) or 0
            p99 = s.get("p99_ms")
            if p99 is not None:
                out["p99_ms"] = p99 if out["p99_ms"] is None else max(out["p99_ms"], p99)
        for k in ("events_s", "recs_s", "dlq_s"):
            out[k] = round(out[k], 3)
        return out
