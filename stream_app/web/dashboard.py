"""The operator dashboard of a worker: ``GET /dashboard`` (a page) and ``GET /api/stats`` (its data).

A one-second timer reads the worker's counters into a :class:`~stream_app.core.stats.StatsCollector`;
the page polls ``/api/stats?scope=cluster`` every second and draws the series. With several
workers in the group, the cluster scope asks every peer the partition assignor knows for its
``/api/stats?scope=summary`` (forwarding the caller's bearer token) and adds the totals.

Scopes of ``/api/stats``: ``local`` (default: this worker's full snapshot), ``summary`` (this
worker's latest figures only), ``cluster`` (local snapshot plus every worker's summary).

Both views require the bearer token when ``STREAMREC_AUTH_TOKEN`` is set; the page also accepts
it as ``?token=...`` so a browser can open it (the page's script then keeps the token in memory,
removes it from the address bar and sends it as an ``Authorization`` header).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from functools import wraps
from pathlib import Path

import aiohttp
import orjson
from faust.sensors import Sensor
from faust.web import View

from stream_app.core import metrics
from stream_app.core.stats import LATENCIES, LatencyReservoir, Reading, StatsCollector, percentile
from stream_app.settings import get_settings
from stream_app.web.users import authorized
from stream_app.worker.agents import pipeline, scorer, watcher
from stream_app.worker.app import app
from stream_app.worker.topics import events_topic

log = logging.getLogger(__name__)
settings = get_settings()
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
PEER_TIMEOUT_S = 2.0
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
}



class IngestTimer(Sensor):
    """Per-record service time of the ingest agent, from the starts of consecutive records.

    The agent handles one record at a time, so the time from the start of one record to the
    start of the next is the first one's processing (Faust's per-record overhead included)
    whenever the next record was already in Kafka when the first one started (the consumer
    fetches ahead); other gaps contain idle waiting and are not counted.
    """

    def __init__(self, topic: str, size: int = 2048) -> None:
        super().__init__()
        self.topic = topic
        self.times = LatencyReservoir(size)
        self._record_started: dict[int, float] = {}

    def on_stream_event_in(self, tp, offset, stream, event):
        if tp.topic != self.topic:
            return None
        now = time.time()
        key = id(stream)
        prev = self._record_started.get(key)
        produced = event.message.timestamp  # seconds since the epoch (Kafka record timestamp)
        if prev is not None and produced is not None and produced <= prev:
            self.times.extend([now - prev])
        self._record_started[key] = now
        return None


collector = StatsCollector(window_s=600.0, interval_s=1.0, latencies=LATENCIES)
ingest_timer = IngestTimer(events_topic.get_topic_name())
app.sensors.add(ingest_timer)
_ingest_mark = 0
_lag: dict[int, int] = {}


def _by_label(counter, label: str) -> dict[str, int]:
    """Current values of a labelled Prometheus counter, e.g. ``{"schema": 3}``."""
    out: dict[str, int] = {}
    for metric in counter.collect():
        for s in metric.samples:
            if s.name.endswith("_total"):
                out[s.labels[label]] = int(s.value)
    return out


def _events_partitions() -> list[int]:
    try:
        name = events_topic.get_topic_name()
        return sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == name)
    except Exception:  # no consumer yet (starting) or rebalancing
        return []


async def _read_lag() -> dict[int, int]:
    consumer = app.consumer
    name = events_topic.get_topic_name()
    lag: dict[int, int] = {}
    for tp in consumer.assignment():
        if tp.topic != name:
            continue
        hw = consumer.highwater(tp)
        pos = await consumer.position(tp)
        if hw is not None and pos is not None:
            lag[tp.partition] = max(0, hw - pos)
    return lag


def _ingest_ms() -> float | None:
    """Median ingest time per record (ms) since the previous call."""
    global _ingest_mark
    fresh = ingest_timer.times.since(_ingest_mark)
    _ingest_mark = ingest_timer.times.total
    median = percentile(fresh, 50)
    return None if median is None else round(median * 1000.0, 4)


def reading(now: float | None = None) -> Reading:
    """What the worker's counters say right now (cheap: a few dictionary look-ups)."""
    events = _by_label(metrics.EVENTS, "outcome")
    return Reading(
        t=time.time() if now is None else now,
        ingested=sum(events.values()),
        scored=scorer.sent,
        batches=scorer.batches,
        busy_s=scorer.busy_s,
        ingest_ms=_ingest_ms(),
        queue=scorer.queue.qsize(),
        lag=dict(_lag),
        dlq=_by_label(metrics.DLQ, "reason"),
        quality=pipeline.live.snapshot(),
    )


@app.timer(interval=1.0)
async def sample_dashboard_stats() -> None:
    global _lag
    try:
        _lag = await _read_lag()
    except Exception:  # lag is best effort while the consumer rebalances
        log.debug("consumer lag not available yet", exc_info=True)
    collector.sample(reading())


def _json(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def summary() -> dict:
    """This worker's latest figures, partitions and models (what peers fetch)."""
    return {
        "url": str(app.conf.canonical_url),
        "partitions": _events_partitions(),
        "model_version": pipeline.model_version(),
        **collector.current(),
    }


def local_stats() -> dict:
    """The full picture of this worker."""
    live = pipeline.live.snapshot()
    deep = pipeline.ranker.deep
    return {
        "worker": {"url": str(app.conf.canonical_url), "app_id": settings.app_id,
                   "events_topic": events_topic.get_topic_name(), "partitions": _events_partitions(),
                   "now": time.time()},
        **collector.snapshot(),
        "agents": agent_stats(),
        "quality": live,
        "models": {
            "version": pipeline.model_version(),
            "deep_serving": getattr(deep, "version", None),
            "previous": getattr(watcher.previous, "version", None),
            "history": list(reversed(watcher.history)),
        },
        "trending": [{"item_id": item, "score": round(score, 4)}
                     for item, score in pipeline.ranker.popularity.leaderboard()[:10]],
        "queue": scorer.queue.qsize(),
    }


def _last_measured(name: str) -> float | None:
    for s in reversed(collector.samples):
        v = getattr(s, name)
        if v is not None:
            return v
    return None


def agent_stats() -> list[dict]:
    """Per agent: rate now, peak rate in the window, and the last measured processing time."""
    samples = collector.samples
    last = samples[-1] if samples else None
    return [
        {"name": "ingest", "role": "validate, update state, queue", "events_s": last.events_s if last else 0.0,
         "peak_s": max((s.events_s for s in samples), default=0.0), "ms": _last_measured("ingest_ms"),
         "unit": "ms/event", "total": collector.current()["ingested"]},
        {"name": "scorer", "role": "learn, rank, publish", "events_s": last.recs_s if last else 0.0,
         "peak_s": max((s.recs_s for s in samples), default=0.0), "ms": _last_measured("batch_ms"),
         "unit": "ms/batch", "total": scorer.sent, "busy_pct": last.busy_pct if last else 0.0},
    ]


def peer_urls() -> dict[str, list[int]]:
    """Every worker of the group the assignor knows, with its ``events`` partitions."""
    name = events_topic.get_topic_name()
    out: dict[str, list[int]] = {}
    try:
        for url, topics in app.assignor.external_topics_metadata().items():
            out[str(url).rstrip("/")] = sorted(topics.get(name, []))
    except Exception:  # no assignment yet
        log.debug("assignment metadata not available", exc_info=True)
    return out


async def _fetch_summary(session: aiohttp.ClientSession, url: str, headers: dict) -> dict:
    try:
        async with session.get(f"{url}/api/stats", params={"scope": "summary"}, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)) as resp:
            if resp.status != 200:
                return {"url": url, "ok": False, "error": f"HTTP {resp.status}"}
            data = orjson.loads(await resp.read())
            return {**data, "url": url, "ok": True}
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, OSError) as exc:
        return {"url": url, "ok": False, "error": type(exc).__name__ + (f": {exc}" if str(exc) else "")}


async def cluster_stats(authorization: str | None) -> dict:
    me = summary()
    me.update(ok=True, self=True)
    assigned = peer_urls()
    own = me["url"].rstrip("/")
    headers = {"Authorization": authorization} if authorization else {}
    others = [u for u in assigned if u != own]
    workers = [me]
    if others:
        async with aiohttp.ClientSession() as session:
            workers += await asyncio.gather(*(_fetch_summary(session, u, headers) for u in others))
    for w in workers:
        w.setdefault("self", False)
        if not w.get("ok"):
            w["partitions"] = assigned.get(w["url"], [])
    workers.sort(key=lambda w: (min(w["partitions"]) if w.get("partitions") else 1 << 30, w["url"]))
    totals = StatsCollector.totals(w for w in workers if w.get("ok"))
    totals["partitions"] = sum(len(w.get("partitions") or []) for w in workers)
    totals["unreachable"] = sum(1 for w in workers if not w.get("ok"))
    return {"workers": workers, "totals": totals}


def authorized_page(view):
    """Like :func:`stream_app.web.users.authorized`, also accepting the token as ``?token=...``."""
    guarded = authorized(view)

    @wraps(view)
    async def wrapper(self, request, *args, **kwargs):
        token = settings.auth_token
        given = request.query.get("token")
        if token and given is not None and hmac.compare_digest(given.encode(), token.encode()):
            return await view(self, request, *args, **kwargs)
        return await guarded(self, request, *args, **kwargs)

    return wrapper


def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@app.page("/dashboard")
class DashboardView(View):
    @authorized_page
    async def get(self, request):
        return self.bytes(_asset("dashboard.html"), content_type="text/html", headers=dict(PAGE_HEADERS))


@app.page("/dashboard/dashboard.js")
class DashboardScript(View):
    async def get(self, request):  # static code, no data: served without the token
        return self.bytes(_asset("dashboard.js"), content_type=ASSETS["dashboard.js"],
                          headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@app.page("/dashboard/dashboard.css")
class DashboardStyle(View):
    async def get(self, request):
        return self.bytes(_asset("dashboard.css"), content_type=ASSETS["dashboard.css"],
                          headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@app.page("/api/stats")
class StatsView(View):
    @authorized
    async def get(self, request):
        scope = request.query.get("scope", "local")
        if scope == "summary":
            body = summary()
        elif scope == "local":
            body = local_stats()
        elif scope == "cluster":
            body = local_stats()
            body["cluster"] = await cluster_stats(request.headers.get("Authorization"))
        else:
            return self.json({"error": f"unknown scope {scope!r}: use local, summary or cluster"}, status=400)
        return self.bytes(_json(body), content_type="application/json", headers={"Cache-Control": "no-store"})
