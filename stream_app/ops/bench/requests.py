"""Request load of the benchmark: fresh lists asked at a fixed rate while events stream.

After the headline catalogue's run, a worker of its own (its own consumer group, the catalogue's
model registry) reads the catalogue's events topic from the start, so it holds every user's
state and the promoted deep model. Then, for ``seconds``, a producer process streams new events
at half the catalogue's measured maximum rate while this process asks
``GET /users/{id}/recommendations?fresh=true`` at ``rate`` requests per second, open loop: each
request is started at its slot whatever the earlier ones are doing, so a slow answer cannot hold
later requests back and hide its cost (no coordinated omission).

A request's latency is measured from its slot to the end of the answer (client lateness
included); ``compute_*`` are the worker's own ranking times (the answers' ``latency_ms``), and
``events_*`` the event->recommendation latency of the stream during the requests.

>>> slots(3, 10.0)
[0.0, 0.1, 0.2]
>>> summarize([2.0, 1.0, 3.0, 4.0], statuses=[200, 200, 200, 400], offered=4, seconds=1.0)["request_p50_ms"]
2.0
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

import stream_app.ops.bench.load as load
import stream_app.ops.bench.measure as measure
from stream_app.kafka import kafka_consumer
from stream_app.ops.bench.procs import BenchWorker, Names
from stream_app.settings import Settings

__all__ = ["fire", "measure_requests", "slots", "summarize"]


def slots(n: int, rate: float) -> list[float]:
    """Start offsets (seconds) of ``n`` requests at ``rate`` per second."""
    return [i / rate for i in range(n)]


async def fire(base_url: str, paths: Sequence[str], rate: float, timeout_s: float = 10.0) -> list[tuple[int, float, bytes]]:
    """GET every path, one per slot of ``rate``/s (open loop); ``(status, ms from slot to answer, body)`` each."""
    import aiohttp

    results: list[tuple[int, float, bytes]] = [(0, 0.0, b"")] * len(paths)
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as session:

        async def one(i: int, path: str, due: float) -> None:
            try:
                async with session.get(path) as resp:
                    body = await resp.read()
                    results[i] = (resp.status, (time.perf_counter() - due) * 1000.0, body)
            except (aiohttp.ClientError, TimeoutError):
                results[i] = (0, (time.perf_counter() - due) * 1000.0, b"")

        t0 = time.perf_counter()
        tasks = []
        for i, (path, offset) in enumerate(zip(paths, slots(len(paths), rate))):
            due = t0 + offset
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(i, path, due)))
        await asyncio.gather(*tasks)
    return results


def summarize(ms: Sequence[float], statuses: Sequence[int], offered: int, seconds: float,
              compute_ms: Sequence[float] = ()) -> dict[str, Any]:
    """The report's request figures: latency of the answered (200) requests, counts by status."""
    ok = [m for m, s in zip(ms, statuses) if s == 200]
    pct = measure.percentiles(ok) if ok else {}
    out: dict[str, Any] = {
        "request_rate": round(offered / seconds, 1) if seconds > 0 else None,
        "request_p50_ms": pct.get("p50_ms"), "request_p99_ms": pct.get("p99_ms"),
        "request_max_ms": round(max(ok), 3) if ok else None,
        "requests": offered, "answered": len(ok),
        "statuses": {str(k): v for k, v in sorted(Counter(statuses).items())},
    }
    if compute_ms:
        c = measure.percentiles(list(compute_ms))
        out.update(compute_p50_ms=c.get("p50_ms"), compute_p99_ms=c.get("p99_ms"))
    return out


def _catalogue_names(run: str, n_items: int) -> Names:
    """The topics of catalogue ``n_items`` (labelled as :mod:`stream_app.ops.bench.catalog` labels them)."""
    return Names(run, f"{n_items // 1000}k" if n_items >= 1000 else str(n_items))


def _events_in(settings: Settings, topic: str) -> int:
    from kafka import TopicPartition

    c = kafka_consumer(settings.kafka_connection(), group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        return int(sum(c.end_offsets(tps).values()))
    finally:
        c.close()


def _wait_scored(w: BenchWorker, expect: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = w.health()
        if h is not None and h.get("scored", 0) >= expect:
            return True
        time.sleep(0.5)
    return False


def measure_requests(settings: Settings, run: str, n_items: int, event_rate: float, cfg: dict[str, Any],
                     work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Fresh-list latency at a fixed request rate while events stream at ``event_rate``/s.

    Never raises: a run that cannot be measured reports ``{"error": reason}``.
    """
    try:
        return _measure(settings, _catalogue_names(run, n_items), n_items, event_rate, cfg, work, log)
    except Exception as exc:
        log(f"  request load not measured: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}


def _measure(settings: Settings, names: Names, n_items: int, event_rate: float, cfg: dict[str, Any],
             work: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from stream_app import broker

    quick = cfg.get("quick", False)
    rate = float(cfg.get("request_rate", 50.0 if quick else 100.0))
    seconds = float(cfg.get("request_s", 4.0 if quick else 10.0))
    event_rate = max(10.0, event_rate)
    recs_topic = f"{names.prefix}-requests-recommendations"
    broker.ensure_topics(settings.kafka_connection(), {recs_topic: settings.events_partitions})
    backlog = _events_in(settings, names.events)
    worker = BenchWorker(settings, names, work, "requests", STREAMREC_RECOMMENDATIONS_TOPIC=recs_topic)
    worker.start()
    try:
        if not _wait_scored(worker, backlog, timeout=max(120.0, backlog / 500.0)):
            raise RuntimeError(f"the request worker did not catch up with {backlog} events")
        stream = load.make_events(int(event_rate * (seconds + 2.0)) + 10, n_items, cfg["users"], seed=3)
        users = sorted({ev["user_id"] for ev in stream})
        rng = random.Random(0)
        n = max(1, int(rate * seconds))
        paths = [f"/users/{rng.choice(users)}/recommendations?fresh=true" for _ in range(n)]
        pairs = load.encode_events(stream)
        seg = load.write_segment(work / f"{names.label}-requests.msgpack", pairs)
        times_path = work / f"{names.label}-requests-times.npy"
        col = measure.Collector(settings.kafka_connection(), recs_topic, from_end=True).start()
        try:
            proc = load.spawn(settings.kafka_connection(), names.events, seg, event_rate, times_path)
            time.sleep(1.0)  # the stream is flowing before the first request
            results = asyncio.run(fire(worker.url, paths, rate))
            summary = load.finish(proc, timeout=len(pairs) / event_rate * 3 + 60)
            col.wait(len(pairs), timeout=60.0, stall_s=15.0)
        finally:
            records = col.stop()
    finally:
        worker.kill9()  # nothing of its state is kept, and a clean stop would score what it still buffers
    statuses = [s for s, _, _ in results]
    compute = [float(orjson.loads(b)["latency_ms"]) for s, _, b in results if s == 200]
    known = sum(1 for s, _, b in results if s == 200 and orjson.loads(b).get("events_applied", 0) > 0)
    out = summarize([m for _, m, _ in results], statuses, n, seconds, compute)
    recs = measure.parse(records)
    times = np.load(times_path)
    sends = {load.event_index(v.split(b'"event_id":"', 1)[1].split(b'"', 1)[0]): float(t)
             for (_, v), t in zip(pairs, times)}
    lat = measure.latency(recs, sends)
    out.update(known_users=known, event_rate=round(event_rate, 1), event_send_rate=summary.get("send_rate"),
               events=len(pairs), events_received=len(recs),
               events_p50_ms=lat.get("p50_ms"), events_p99_ms=lat.get("p99_ms"))
    log(f"  fresh lists at {out['request_rate']}/s while {event_rate:.0f} events/s stream: p50 "
        f"{out['request_p50_ms']} ms, p99 {out['request_p99_ms']} ms (ranking p50 {out.get('compute_p50_ms')} ms); "
        f"events p99 {out['events_p99_ms']} ms")
    return out
