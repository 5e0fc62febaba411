"""Scenarios 5 and 6 on one worker: soak at 70 % of its measured capacity, then a 10x burst.

Capacity is measured first: a backlog is produced and the worker's drain rate is timed. The
soak streams at ``0.7 * capacity`` while the worker's resident memory (``VmRSS``) and the
group's lag (end offsets minus committed offsets) are sampled every second; memory slope is
the least-squares slope after warm-up. The burst streams at 10x a normal rate of
``0.2 * capacity`` (twice what the worker can do) for ``burst_s`` seconds, then back at the
normal rate until the lag drains; rebalances are counted from the worker's log.

Run against a broker (not a doctest)::

    figures = load_scenario("127.0.0.1:9092", Path("/tmp/rel"), soak_s=20, burst_s=10)
    figures["soak"]["rss_slope_mib_per_min"], figures["burst"]["drain_s"]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream_app.kafka import KafkaTarget
from stream_app.ops.reliability.crash import REBALANCE_LINE
from stream_app.ops.reliability.harness import Feeder, LagProbe, Topics, WorkerProc, slope


def _sample(w: WorkerProc, probe: LagProbe, t0: float) -> dict[str, Any]:
    h = w.health() or {}
    return {"t": time.monotonic() - t0, "rss_mib": w.rss_mb(), "lag": probe.lag(), "scored": h.get("scored")}


def _capacity(bootstrap: KafkaTarget, topics: Topics, w: WorkerProc, n: int, log: Callable[[str], None]) -> float:
    before = (w.health() or {}).get("scored", 0)
    feeder = Feeder(bootstrap, topics.events, 1e9, limit=n, seed=7)
    feeder.start()
    feeder.join(300)  # a limited feeder stops by itself once the backlog is sent
    feeder.finish()
    t_first = t_last = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        scored = (w.health() or {}).get("scored", 0) - before
        now = time.monotonic()
        if scored > 0 and t_first is None:
            t_first, first = now, scored
        if scored >= n:
            t_last = now
            break
        time.sleep(0.05)
    if t_first is None or t_last is None or t_last <= t_first:
        raise RuntimeError(f"capacity run did not finish:\n{w.log_tail()}")
    cap: float = (n - first) / (t_last - t_first)
    log(f"capacity: {cap:.0f} events/s ({n} events)")
    return cap


def _soak(bootstrap: KafkaTarget, topics: Topics, w: WorkerProc, probe: LagProbe, cap: float, soak_s: float,
          warmup_frac: float, n_users: int) -> dict[str, Any]:
    """Stream at 70 % of ``cap`` for ``soak_s`` seconds, sampling memory and lag each second."""
    soak_rate = 0.7 * cap
    feeder = Feeder(bootstrap, topics.events, soak_rate, n_users=n_users, seed=11)
    samples = []
    t0 = time.monotonic()
    feeder.start()
    while time.monotonic() - t0 < soak_s and w.alive:
        samples.append(_sample(w, probe, t0))
        time.sleep(max(0.0, len(samples) - (time.monotonic() - t0)))
    feeder.finish()
    warm = [s for s in samples if s["t"] >= warmup_frac * soak_s and s["rss_mib"] is not None]
    lags = [s["lag"] for s in samples if s["lag"] is not None]
    later = [s["lag"] for s in samples if s["lag"] is not None and s["t"] >= soak_s / 2]
    return {
        "seconds": soak_s, "rate_events_s": round(soak_rate), "events": len(feeder.sent),
        "rss_start_mib": round(samples[0]["rss_mib"] or 0, 1), "rss_end_mib": round(samples[-1]["rss_mib"] or 0, 1),
        "rss_max_mib": round(max((s["rss_mib"] or 0) for s in samples), 1),
        "rss_slope_mib_per_min": round(60 * slope([s["t"] for s in warm], [s["rss_mib"] for s in warm]), 3),
        "warmup_s": round(warmup_frac * soak_s, 1),
        "lag_max": max(lags, default=None), "lag_p95_second_half": _p95(later),
        "lag_slope_per_min_second_half": round(60 * slope(
            [s["t"] for s in samples if s["lag"] is not None and s["t"] >= soak_s / 2], later), 1),
        "worker_alive": w.alive,
    }


def _burst(bootstrap: KafkaTarget, topics: Topics, w: WorkerProc, probe: LagProbe, cap: float, burst_s: float,
           n_users: int) -> dict[str, Any]:
    """Stream at 10x a normal rate of 20 % of ``cap`` for ``burst_s`` seconds, then normally until the lag drains."""
    normal = 0.2 * cap
    rebalances_before = w.log_text().count(REBALANCE_LINE)
    feeder = Feeder(bootstrap, topics.events, lambda t: normal * (10 if t < burst_s else 1), n_users=n_users,
                    seed=13)
    samples = []
    t0 = time.monotonic()
    feeder.start()
    drain_s = None
    limit = burst_s + max(60.0, 6 * burst_s)
    while time.monotonic() - t0 < limit and w.alive:
        s = _sample(w, probe, t0)
        samples.append(s)
        if s["t"] > burst_s and s["lag"] is not None and s["lag"] <= max(50, normal):
            drain_s = s["t"] - burst_s
            break
        time.sleep(max(0.0, len(samples) - (time.monotonic() - t0)))
    feeder.finish()
    lags = [s["lag"] for s in samples if s["lag"] is not None]
    return {
        "seconds": burst_s, "normal_rate_events_s": round(normal), "burst_rate_events_s": round(10 * normal),
        "events": len(feeder.sent), "lag_max": max(lags, default=None),
        "drain_s": None if drain_s is None else round(drain_s, 1),
        "drained": drain_s is not None,
        "rebalances": w.log_text().count(REBALANCE_LINE) - rebalances_before,
        "rss_max_mib": round(max((s["rss_mib"] or 0) for s in samples), 1),
        "worker_alive": w.alive, "out_of_memory": not w.alive and w.proc is not None and w.proc.returncode in (-9, 137),
    }


def load_scenario(bootstrap: KafkaTarget, root: Path, soak_s: float = 600.0, burst_s: float = 60.0,
                  capacity_events: int = 20_000, warmup_frac: float = 0.25, partitions: int = 4,
                  n_users: int = 2000, log: Callable[[str], None] = print) -> dict[str, Any]:
    topics = Topics()
    topics.create(bootstrap, partitions)
    w = WorkerProc(bootstrap, topics, root, "load", partitions, STREAMREC_LOG_LEVEL="info").start()
    probe = LagProbe(bootstrap, topics.app_id, topics.events)
    try:
        _capacity(bootstrap, topics, w, min(capacity_events, 2000), lambda m: None)  # warm-up
        cap = _capacity(bootstrap, topics, w, capacity_events, log)
        soak = _soak(bootstrap, topics, w, probe, cap, soak_s, warmup_frac, n_users)
        log(f"soak: {soak}")
        burst = _burst(bootstrap, topics, w, probe, cap, burst_s, n_users)
        log(f"burst: {burst}")
        return {"capacity_events_s": round(cap), "soak": soak, "burst": burst}
    finally:
        probe.close()
        w.stop()


def _p95(xs: list[int]) -> int | None:
    if not xs:
        return None
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
