"""The group's series: workers sampled on their own clocks, merged on whole seconds."""

from __future__ import annotations

import random

import pytest

from models.base import UserContext
from schemas import Event
from stream_app.core.live import LiveQuality
from stream_app.core.stats import Reading, StatsCollector
from stream_app.web.group import merge_quality, merge_series, peer_part


def worker_part(rate: float, start: float, seconds: int, lag: dict[int, int], judged: int, hr: float,
                jitter: float = 0.0, seed: int = 0) -> dict:
    """A real collector fed ``rate`` events/s for ``seconds``, sampled about once a second from ``start``."""
    rng = random.Random(seed)
    c = StatsCollector(window_s=600, interval_s=1.0)
    t, n = start, 0
    quality = {"judged": judged, "hr@10": hr, "ndcg@10": hr / 2}
    c.sample(Reading(t=t, ingested=0, scored=0, lag=lag, quality=quality))
    for _ in range(seconds):
        dt = 1.0 + rng.uniform(-jitter, jitter)
        t += dt
        n += rate * dt
        c.latencies.extend([0.001 * rate])
        c.sample(Reading(t=t, ingested=round(n), scored=round(n), lag=lag, quality=quality))
    return peer_part(c.snapshot(), quality, since=None)


def test_rates_add_up_over_workers_sampled_out_of_phase():
    a = worker_part(100.0, 1000.2, 30, {0: 5, 1: 3}, judged=300, hr=0.2, jitter=0.05, seed=1)
    b = worker_part(40.0, 1000.7, 30, {2: 1, 3: 0}, judged=100, hr=0.6, jitter=0.05, seed=2)
    g = merge_series([a, b])
    inner = range(2, len(g["t"]) - 2)  # both workers have samples all through the middle
    assert len(g["t"]) >= 28 and g["t"] == sorted(g["t"]) and all(t == int(t) for t in g["t"])
    for i in inner:
        assert g["events_s"][i] == pytest.approx(140.0, rel=0.1)
        assert g["lag_total"][i] == 9
        assert g["p99_ms"][i] == pytest.approx(100.0)  # the slower worker's
        assert g["hr@10"][i] == pytest.approx((0.2 * 300 + 0.6 * 100) / 400)
    assert sorted(g["lag"]) == ["0", "1", "2", "3"]
    # the group's total matches the workers' totals: each sample lands on one grid second
    total = sum(v or 0 for v in g["events_s"])
    assert total == pytest.approx(sum(a["series"]["events_s"]) + sum(b["series"]["events_s"]), rel=0.05)


def test_since_keeps_only_later_seconds_and_one_worker_is_itself():
    a = worker_part(10.0, 500.0, 20, {0: 2}, judged=0, hr=0.0)
    g = merge_series([a], since=510.0)
    assert g["t"][0] == 511.0 and g["t"][-1] == 520.0
    assert all(v == pytest.approx(10.0) for v in g["events_s"])
    assert g["hr@10"] == [None] * len(g["t"])  # nothing judged yet: no quality to show


def test_a_partition_two_workers_report_during_a_rebalance_counts_once():
    a = worker_part(1.0, 0.0, 5, {0: 7}, judged=1, hr=1.0)
    b = worker_part(1.0, 0.0, 5, {0: 4}, judged=1, hr=1.0)
    g = merge_series([a, b])
    assert list(g["lag"]) == ["0"] and set(g["lag_total"]) == {7}


def test_nothing_to_merge():
    g = merge_series([])
    assert g["t"] == [] and g["lag"] == {}
    assert merge_quality([]) == {"judged": 0, "hr@10": None, "ndcg@10": None, "ctr": None, "conversion": None,
                                 "returning_rate": None, "clicks": 0, "purchases": 0, "events": 0}


def test_quality_is_weighted_by_lists_judged():
    q = merge_quality([{"judged": 90, "hr@10": 0.1, "ctr": 0.5}, {"judged": 10, "hr@10": 0.9, "ctr": 0.0}])
    assert q["judged"] == 100 and q["hr@10"] == pytest.approx(0.18) and q["ctr"] == pytest.approx(0.45)


def test_each_figure_is_weighted_by_its_own_denominator():
    a, b = LiveQuality(), LiveQuality()
    a.shown("u1", ["x"], ts=0.0)
    a.observe(UserContext("u1"), Event("e1", "u1", "x", "click", 1.0))  # a click on the list
    a.shown("u2", ["x"], ts=0.0)
    a.observe(UserContext("u2"), Event("e2", "u2", "y", "view", 1.0))
    a.shown("u3", ["x"], ts=0.0)
    a.observe(UserContext("u3"), Event("e3", "u3", "z", "view", 1.0))
    b.shown("u4", ["x"], ts=0.0)
    for n in range(3):  # three clicks off the list
        b.observe(UserContext("u4", last_ts=1.0), Event(f"f{n}", "u4", "y", "click", 2.0))
    together = LiveQuality()
    for users, events in ((("u1", "u2", "u3"), [("u1", "x", "click", None), ("u2", "y", "view", None),
                                                 ("u3", "z", "view", None)]),
                          (("u4",), [("u4", "y", "click", 1.0)] * 3)):
        for u in users:
            together.shown(u, ["x"], ts=0.0)
        for n, (u, item, typ, last) in enumerate(events):
            together.observe(UserContext(u, last_ts=last), Event(f"{u}-{n}", u, item, typ, 2.0))
    merged, exact = merge_quality([a.snapshot(), b.snapshot()]), together.snapshot()
    for name in ("hr@10", "ndcg@10", "ctr", "conversion", "returning_rate"):
        assert merged[name] == pytest.approx(exact[name], abs=1e-6), name
    assert merged["ctr"] == pytest.approx(0.25)  # 1 of 4 clicks was on a list; weighted by lists judged: 0.5


def test_a_burst_is_counted_once_whatever_the_sampling_phase():
    for phase in (0.0, 0.3, 0.97):
        t = [100.0 + phase + k * 1.02 for k in range(10)]  # a timer that runs a little slow
        burst = {"series": {"t": t, "events_s": [0, 0, 0, 0, 500.0, 0, 0, 0, 0, 0]}}
        idle = {"series": {"t": [100.5 + k for k in range(11)], "events_s": [0.0] * 11}}
        g = merge_series([burst, idle])
        assert sum(v or 0 for v in g["events_s"]) == pytest.approx(500.0 * 1.02), phase
        assert max(v or 0 for v in g["events_s"]) <= 500.0 * 1.02
