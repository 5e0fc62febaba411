"""Scenario 8: a stream of ever new item ids against a bounded item catalogue (``STREAMREC_MAX_ITEMS``).

One worker on the real broker; a feeder streams ``events`` events at ``rate`` per second, each
for an item never seen before except a ``hot_share`` of them, which go to a few hundred hot items
(so the lists have something to recommend and the hot items must survive). Every second the
worker's resident memory (``VmRSS``), the items its models hold (``streamrec_items_held``), how
many they forgot, the event loop's lag (``streamrec_event_loop_lag_max_seconds``) and the events
answered are sampled.

Figures: memory when the models first hold ``max_items`` and at the end, with the least-squares
slope in between (a plateau is a slope near 0), the most items held, the longest the loop was
late, whether every event was answered and the hot items are still held. Run against a broker::

    figures = catalogue_scenario("127.0.0.1:9092", Path("/tmp/rel"), events=30_000, max_items=5_000)
    figures["items_held_max"] <= figures["max_items"] + figures["headroom"]
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

from schemas import EVENT_TYPES
from stream_app.kafka import KafkaTarget
from stream_app.ops.reliability.harness import Feeder, LagProbe, Topics, WorkerProc, slope
from stream_app.ops.scaleout import histogram_quantile, metric

TS0 = 1.7e9


def new_items_stream(n_users: int, hot: int, hot_share: float) -> Callable[[str, int, random.Random], dict[str, Any]]:
    """Event ``i``: a new item ``n-<i>``, or (``hot_share`` of the time) one of ``hot`` hot items."""

    def make(run: str, i: int, rng: random.Random) -> dict[str, Any]:
        item = f"h-{int(hot * rng.random() ** 2)}" if rng.random() < hot_share else f"n-{run}-{i}"
        return {"event_id": f"{run}-{i}", "user_id": f"u-{rng.randrange(n_users)}", "item_id": item,
                "type": rng.choices(EVENT_TYPES, weights=(6, 3, 1, 1))[0], "ts": TS0 + i * 0.01}

    return make


def _sample(w: WorkerProc, probe: LagProbe, t0: float, sent: int) -> dict[str, Any]:
    status, body = w.get("/metrics", timeout=5)
    page = body.decode() if status == 200 else ""
    h = w.health() or {}
    return {
        "t": round(time.monotonic() - t0, 2), "sent": sent, "scored": h.get("scored"), "rss_mib": w.rss_mb(),
        "items_held": metric(page, "streamrec_items_held"),
        "forgotten": metric(page, "streamrec_items_forgotten_total"),
        "loop_lag_max_s": metric(page, "streamrec_event_loop_lag_max_seconds"),
        "loop_held_max_s": metric(page, "streamrec_event_loop_held_max_seconds"),
        "lag": probe.lag(), "page": page,
    }


def catalogue_scenario(bootstrap: KafkaTarget, root: Path, events: int = 2_200_000, max_items: int = 200_000,
                       rate: float = 3000.0, hot: int = 300, hot_share: float = 0.1, n_users: int = 20_000,
                       partitions: int = 4, drain_s: float = 300.0, checkpoint_s: float = 30.0,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    topics = Topics()
    topics.create(bootstrap, partitions)
    # checkpoints as often as a production worker takes them (the test bed's 2 s would keep the
    # models busy with checkpoints at 100,000 items)
    w = WorkerProc(bootstrap, topics, root, "w1", partitions, STREAMREC_MAX_ITEMS=str(max_items),
                   STREAMREC_LOG_LEVEL="warning", STREAMREC_CHECKPOINT_INTERVAL_S=str(checkpoint_s))
    w.start()
    probe = LagProbe(bootstrap, topics.app_id, topics.events)
    feeder = Feeder(bootstrap, topics.events, rate, limit=events, seed=21, make=new_items_stream(n_users, hot, hot_share))
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    feeder.start()
    deadline = t0 + events / rate + drain_s
    try:
        while time.monotonic() < deadline and w.alive:
            s = _sample(w, probe, t0, len(feeder.sent))
            samples.append(s)
            if s["scored"] is not None and s["scored"] >= events:
                break
            if len(samples) % 30 == 0:
                log(f"  {s['t']:.0f} s: sent {s['sent']}, answered {s['scored']}, items held {s['items_held']:.0f}, "
                    f"forgotten {s['forgotten']:.0f}, rss {s['rss_mib'] or 0:.0f} MiB, "
                    f"loop late at most {1000 * s['loop_lag_max_s']:.0f} ms")
            time.sleep(max(0.0, len(samples) - (time.monotonic() - t0)))
        feeder.finish()
        last = samples[-1]
        hot_held = _hot_still_recommended(w, n_users)
        return _figures(samples, last, events, max_items, hot, hot_share, rate, w, feeder.acked, hot_held)
    finally:
        feeder.finish()
        probe.close()
        w.stop()


def _hot_still_recommended(w: WorkerProc, n_users: int) -> int:
    """How many of 20 users' latest recommendations name a hot item (the survivors are served)."""
    n = 0
    for u in range(20):
        status, body = w.get(f"/users/u-{u}/recommendations", timeout=5)
        if status == 200 and b'"h-' in body:
            n += 1
    return n


def _figures(samples: list[dict[str, Any]], last: dict[str, Any], events: int, max_items: int, hot: int,
             hot_share: float, rate: float, w: WorkerProc, acked: set[str], hot_held: int) -> dict[str, Any]:
    headroom = max(4096, max_items // 8)
    full = next((s for s in samples if s["items_held"] >= max_items * 0.95), None)
    after = [s for s in samples if full is not None and s["t"] >= full["t"] and s["rss_mib"] is not None]
    rss = [s["rss_mib"] for s in samples if s["rss_mib"] is not None]
    scored = [s["scored"] or 0 for s in samples]
    stall = cur = 0.0
    for a, b in pairwise(samples):  # longest stretch with work waiting and nothing answered
        if (b["scored"] or 0) == (a["scored"] or 0) and (b["lag"] or 0) > 0:
            cur += b["t"] - a["t"]
            stall = max(stall, cur)
        else:
            cur = 0.0

    def rss_at(frac: float) -> float | None:
        s = next((s for s in samples if s["sent"] >= frac * events and s["rss_mib"] is not None), None)
        return None if s is None else round(s["rss_mib"], 1)

    page = last["page"]
    p99 = histogram_quantile(page, "streamrec_event_loop_lag_seconds", 0.99)
    batch = {f"p{int(100 * q)}": histogram_quantile(page, "streamrec_batch_size", q) for q in (0.5, 0.99)}
    batch_s = {f"p{int(100 * q)}_ms": _ms(histogram_quantile(page, "streamrec_scoring_seconds", q)) for q in (0.5, 0.99)}
    return {
        "events": events, "acked": len(acked), "distinct_items_about": int(events * (1 - hot_share)) + hot,
        "rate_events_s": rate, "seconds": last["t"], "max_items": max_items, "headroom": headroom,
        "items_held_max": int(max(s["items_held"] for s in samples)), "items_held_end": int(last["items_held"]),
        "forgotten": int(last["forgotten"]),
        "rss_mib_at": {f"{int(100 * f)}%": rss_at(f) for f in (0.1, 0.25, 0.5, 0.75, 1.0)},
        "rss_max_mib": round(max(rss, default=0.0), 1),
        "rss_when_full_mib": None if full is None or full["rss_mib"] is None else round(full["rss_mib"], 1),
        "full_at_s": None if full is None else full["t"],
        "rss_slope_after_full_mib_per_min": round(60 * slope([s["t"] for s in after], [s["rss_mib"] for s in after]), 2)
        if len(after) > 2 else None,
        "loop_lag_max_ms": round(1000 * max(s["loop_lag_max_s"] for s in samples), 1),
        "loop_lag_max_after_warmup_ms": round(1000 * max((s["loop_lag_max_s"] for s in samples
                                                           if s["sent"] >= 0.1 * events and s["t"] >= 25), default=0), 1),
        "loop_held_max_ms": round(1000 * max((s["loop_held_max_s"] or 0.0) for s in samples), 1),
        "loop_held_max_after_warmup_ms": round(1000 * max(((s["loop_held_max_s"] or 0.0) for s in samples
                                                            if s["sent"] >= 0.1 * events and s["t"] >= 25), default=0), 1),
        "loop_lag_p99_bucket_ms": _ms(p99), "batch_size_bucket": batch, "batch_scoring_bucket": batch_s,
        "answered": int(max(scored, default=0)), "all_answered": max(scored, default=0) >= events,
        "longest_stall_s": round(stall, 1), "hot_in_lists_of_20_users": hot_held, "worker_alive": w.alive,
        "samples": [{k: v for k, v in s.items() if k != "page"} for s in samples[:: max(1, len(samples) // 60)]],
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)
