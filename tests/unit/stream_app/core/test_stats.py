"""The dashboard's collector: rates from counter deltas, latency percentiles, bounded rings."""

from __future__ import annotations

import random

import orjson
import pytest

from stream_app.core.stats import LatencyReservoir, Reading, StatsCollector, percentile


def test_percentile_interpolates_and_rejects_bad_q():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    for bad in (-1, 101, float("nan")):
        with pytest.raises(ValueError, match=r"0\.\.100"):
            percentile(values, bad)


def test_reservoir_is_bounded_and_counts_everything():
    r = LatencyReservoir(size=5)
    r.extend([float(i) for i in range(12)])
    assert len(r) == 5 and r.total == 12
    assert r.recent() == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert r.since(10) == [10.0, 11.0]
    assert r.since(0) == r.recent()  # older ones already left the ring
    assert r.since(12) == []
    with pytest.raises(ValueError):
        LatencyReservoir(size=0)


def test_rates_come_from_deltas_over_the_elapsed_time():
    c = StatsCollector(window_s=60, interval_s=1.0)
    assert c.sample(Reading(t=10.0, ingested=100, scored=90, batches=3, busy_s=0.5, dlq={"schema": 1})) is None
    s = c.sample(Reading(t=12.0, ingested=300, scored=250, batches=7, busy_s=0.54, ingest_ms=0.2,
                         dlq={"schema": 3, "malformed_json": 2}, lag={0: 5, 2: 7}, queue=4))
    assert s is not None
    assert s.events_s == 100.0 and s.recs_s == 80.0
    assert s.dlq_s == pytest.approx(2.0)  # (2 + 2) records over 2 s
    assert s.batch_ms == pytest.approx(10.0)  # 0.04 s over 4 batches
    assert s.busy_pct == pytest.approx(2.0)
    assert s.ingest_ms == 0.2 and s.queue == 4
    snap = c.snapshot()
    assert snap["series"]["t"] == [12.0]
    assert snap["series"]["lag_total"] == [12]
    assert snap["lag"] == {"0": [5], "2": [7]}
    assert snap["dlq"] == {"schema": 3, "malformed_json": 2}
    assert snap["current"]["ingested"] == 300 and snap["current"]["dlq_total"] == 5
    orjson.dumps(snap)  # JSON-ready


def test_idle_intervals_have_no_processing_time_and_counter_resets_are_not_negative():
    c = StatsCollector(window_s=60, interval_s=1.0)
    c.sample(Reading(t=0.0, ingested=50, scored=50, batches=2, busy_s=1.0, ingest_ms=0.3))
    idle = c.sample(Reading(t=1.0, ingested=50, scored=50, batches=2, busy_s=1.0, ingest_ms=0.3))
    assert idle.events_s == 0.0 and idle.batch_ms is None and idle.ingest_ms is None and idle.p99_ms is None
    reset = c.sample(Reading(t=2.0, ingested=10, scored=5, batches=1, busy_s=0.1))
    assert reset.events_s == 0.0 and reset.recs_s == 0.0 and reset.busy_pct == 0.0
    assert c.sample(Reading(t=2.0, ingested=20)) is None  # no time elapsed: no point


def test_latency_percentiles_cover_only_the_interval():
    lat = LatencyReservoir(size=10_000)
    c = StatsCollector(window_s=60, interval_s=1.0, latencies=lat)
    c.sample(Reading(t=0.0))
    lat.extend([0.001] * 90 + [0.050] * 10)  # 1 ms mostly, a 50 ms tail
    first = c.sample(Reading(t=1.0, ingested=100, scored=100, batches=1))
    assert first.p50_ms == pytest.approx(1.0)
    assert first.p99_ms == pytest.approx(50.0)
    lat.extend([0.004] * 20)
    second = c.sample(Reading(t=2.0, ingested=120, scored=120, batches=2))
    assert second.p50_ms == pytest.approx(4.0) and second.p99_ms == pytest.approx(4.0)
    summary = c.latency_summary()  # over everything still in the reservoir
    assert summary["count"] == 120 and summary["total"] == 120
    assert summary["p50"] == pytest.approx(1.0) and summary["p99"] == pytest.approx(50.0)


def test_ring_keeps_only_the_window():
    c = StatsCollector(window_s=10, interval_s=2.0)
    for i in range(40):
        c.sample(Reading(t=float(i), ingested=i * 10, lag={i % 3: i}))
    snap = c.snapshot()
    assert len(c.samples) == 5
    assert snap["series"]["t"] == [35.0, 36.0, 37.0, 38.0, 39.0]
    assert all(len(v) == 5 for v in snap["series"].values())
    assert all(len(v) == 5 for v in snap["lag"].values())
    assert snap["lag"]["0"] == [None, 36, None, None, 39]  # gaps where the partition was not ours


def test_quality_series_only_once_lists_were_judged():
    c = StatsCollector(window_s=60, interval_s=1.0)
    c.sample(Reading(t=0.0))
    s1 = c.sample(Reading(t=1.0, quality={"judged": 0, "hr@10": 0.0, "ndcg@10": 0.0}))
    s2 = c.sample(Reading(t=2.0, quality={"judged": 8, "hr@10": 0.25, "ndcg@10": 0.125}))
    assert (s1.hr, s1.ndcg) == (None, None)
    assert (s2.hr, s2.ndcg) == (0.25, 0.125)


def test_totals_sum_workers_and_take_the_worst_p99():
    rng = random.Random(3)
    workers = [{"events_s": rng.uniform(0, 100), "recs_s": 1.0, "lag": 2, "scored": 10, "dlq_total": 1,
                "p99_ms": p} for p in (3.0, None, 9.5)]
    t = StatsCollector.totals(workers)
    assert t["workers"] == 3 and t["lag"] == 6 and t["scored"] == 30 and t["dlq_total"] == 3
    assert t["events_s"] == pytest.approx(sum(w["events_s"] for w in workers), abs=1e-3)
    assert t["p99_ms"] == 9.5
    assert StatsCollector.totals([])["p99_ms"] is None


def test_bad_window_is_refused():
    with pytest.raises(ValueError, match="interval_s"):
        StatsCollector(window_s=1, interval_s=5)
    with pytest.raises(ValueError):
        StatsCollector(interval_s=0)
