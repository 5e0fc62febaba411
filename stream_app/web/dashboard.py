"""The operator dashboard of a worker: ``GET /dashboard`` (a page) and ``GET /api/stats`` (its data).

A one-second timer reads the worker's counters into a :class:`~stream_app.core.stats.StatsCollector`;
the page polls ``/api/stats?scope=cluster`` every second and draws the series. With several
workers in the group, the cluster scope asks every peer the partition assignor knows for its
``/api/stats?scope=peer`` (forwarding the caller's bearer token), adds the totals and merges the
workers' series into the group's (:mod:`stream_app.web.group`), so the charts show the whole group.

Scopes of ``/api/stats``: ``local`` (default: this worker's full snapshot), ``summary`` (this
worker's latest figures only), ``peer`` (the summary and the series a peer merges),
``cluster`` (local snapshot plus every worker's summary and the group's series). ``since=T``
(seconds since the epoch) limits ``peer`` and the group's series to what came after ``T``.

Both views require the bearer token when ``STREAMREC_AUTH_TOKEN`` is set; the page also accepts
it as ``?token=...`` so a browser can open it (the page's script then keeps the token in memory,
removes it from the address bar and sends it as an ``Authorization`` header).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from faust.sensors import Sensor
from faust.web import View

from stream_app.core.experiment_report import experiment_view
from stream_app.core.experiment_report import merge as merge_variants
from stream_app.core.stats import LatencyReservoir, Reading, StatsCollector, percentile
from stream_app.web.auth import authorized, authorized_page
from stream_app.web.group import HOLD_S, merge_quality, merge_series, peer_part
from stream_app.web.peers import peer_allowed

if TYPE_CHECKING:
    from stream_app.worker.build import Worker

log = logging.getLogger(__name__)
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

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
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


class Dashboard:
    """What the dashboard shows of one worker, sampled once a second."""

    def __init__(self, w: Worker) -> None:
        self.w = w
        self.collector = StatsCollector(window_s=600.0, interval_s=1.0, latencies=w.scorer.latencies)
        self.ingest_timer = IngestTimer(w.topics.events_name)
        self._ingest_mark = 0
        self.lag: dict[int, int] = {}

    def events_partitions(self) -> list[int]:
        try:
            name = self.w.topics.events_name
            return sorted(tp.partition for tp in self.w.app.consumer.assignment() if tp.topic == name)
        except Exception:  # no consumer yet (starting) or rebalancing
            return []

    def ingest_ms(self) -> float | None:
        """Median ingest time per record (ms) since the previous call."""
        fresh = self.ingest_timer.times.since(self._ingest_mark)
        self._ingest_mark = self.ingest_timer.times.total
        median = percentile(fresh, 50)
        return None if median is None else round(median * 1000.0, 4)

    def reading(self, now: float | None = None) -> Reading:
        """What the worker's counters say right now (cheap: a few dictionary look-ups)."""
        m, scorer = self.w.metrics, self.w.scorer
        events = m.by_label(m.events, "outcome")
        return Reading(
            t=time.time() if now is None else now,
            ingested=sum(events.values()),
            scored=scorer.sent,
            batches=scorer.batches,
            busy_s=scorer.busy_s,
            ingest_ms=self.ingest_ms(),
            queue=scorer.queue.qsize(),
            lag=dict(self.lag),
            dlq=m.by_label(m.dlq, "reason"),
            quality=self.w.pipeline.live.snapshot(),
        )

    async def sample(self) -> None:
        from stream_app.worker.tasks import read_lag

        try:
            self.lag = await read_lag(self.w)
        except Exception:  # lag is best effort while the consumer rebalances
            log.debug("consumer lag not available yet", exc_info=True)
        self.collector.sample(self.reading())

    def experiment(self, sums: dict[str, dict[str, float]]) -> dict[str, Any] | None:
        """The running experiment's variants with their figures (None without an experiment)."""
        exp = self.w.pipeline.lists.experiment
        return None if exp is None else experiment_view(exp.name, exp.describe(), sums)

    def url(self) -> str:
        return str(self.w.app.conf.canonical_url)

    def summary(self) -> dict[str, Any]:
        """This worker's latest figures, partitions and models (what peers fetch)."""
        return {
            "url": self.url(),
            "partitions": self.events_partitions(),
            "model_version": self.w.pipeline.model_version(),
            "quality": self.w.pipeline.live.snapshot(),
            "variants": self.w.pipeline.live.variants(),
            **self.collector.current(),
        }

    def peer(self, since: float | None) -> dict[str, Any]:
        """The summary plus the samples (after ``since``) a peer merges into the group's series."""
        summary = self.summary()
        return {**summary, **peer_part(self.collector.snapshot(), summary["quality"], since)}

    def local_stats(self) -> dict[str, Any]:
        """The full picture of this worker."""
        w = self.w
        pipeline, watcher = w.pipeline, w.watcher
        deep = pipeline.ranker.deep
        return {
            "worker": {"url": self.url(), "app_id": w.settings.app_id,
                       "events_topic": w.topics.events_name, "partitions": self.events_partitions(),
                       "now": time.time()},
            **self.collector.snapshot(),
            "agents": self.agent_stats(),
            "quality": pipeline.live.snapshot(),
            "experiment": self.experiment(pipeline.live.variants()),
            "models": {
                "version": pipeline.model_version(),
                "deep_serving": getattr(deep, "version", None),
                "previous": getattr(watcher.previous, "version", None),
                "history": list(reversed(watcher.history)),
            },
            "trending": [{"item_id": item, "score": round(score, 4)}
                         for item, score in pipeline.ranker.popularity.leaderboard()[:10]],
            "queue": w.scorer.queue.qsize(),
        }

    def _last_measured(self, name: str) -> float | None:
        for s in reversed(self.collector.samples):
            v = getattr(s, name)
            if v is not None:
                return float(v)
        return None

    def agent_stats(self) -> list[dict[str, Any]]:
        """Per agent: rate now, peak rate in the window, and the last measured processing time."""
        samples = self.collector.samples
        last = samples[-1] if samples else None
        return [
            {"name": "ingest", "role": "validate, update state, queue", "events_s": last.events_s if last else 0.0,
             "peak_s": max((s.events_s for s in samples), default=0.0), "ms": self._last_measured("ingest_ms"),
             "unit": "ms/event", "total": self.collector.current()["ingested"]},
            {"name": "scorer", "role": "learn, rank, publish", "events_s": last.recs_s if last else 0.0,
             "peak_s": max((s.recs_s for s in samples), default=0.0), "ms": self._last_measured("batch_ms"),
             "unit": "ms/batch", "total": self.w.scorer.sent, "busy_pct": last.busy_pct if last else 0.0},
        ]

    def peer_urls(self) -> dict[str, list[int]]:
        """Every worker of the group the assignor knows, with its ``events`` partitions."""
        name = self.w.topics.events_name
        out: dict[str, list[int]] = {}
        try:
            assignor: Any = self.w.app.assignor  # the concrete assignor: its declared type lacks this method
            for url, topics in assignor.external_topics_metadata().items():
                out[str(url).rstrip("/")] = sorted(topics.get(name, []))
        except Exception:  # no assignment yet
            log.debug("assignment metadata not available", exc_info=True)
        return out

    async def cluster_stats(self, authorization: str | None, since: float | None = None) -> dict[str, Any]:
        # peers send a little more than asked: the first grid seconds after ``since`` need their
        # samples from up to HOLD_S before it
        ask_since = None if since is None else since - HOLD_S
        me = self.peer(ask_since)
        me.update(ok=True, self=True)
        assigned = self.peer_urls()
        own = me["url"].rstrip("/")
        headers = {"Authorization": authorization} if authorization else {}
        others = [u for u in assigned if u != own]
        allowed = peer_allowed(self.w.settings.peer_hosts, self.w.settings.advertised_web_host)
        asked = [u for u in others if allowed(u)]
        workers = [me] + [{"url": u, "ok": False, "error": "host not in STREAMREC_PEER_HOSTS: not asked"}
                          for u in others if u not in asked]
        if asked:  # the caller's token goes only to hosts on the allow-list
            async with aiohttp.ClientSession() as session:
                workers += await asyncio.gather(*(fetch_peer(session, u, headers, ask_since) for u in asked))
        for wk in workers:
            wk.setdefault("self", False)
            if not wk.get("ok"):
                wk["partitions"] = assigned.get(wk["url"], [])
        workers.sort(key=lambda wk: (min(wk["partitions"]) if wk.get("partitions") else 1 << 30, wk["url"]))
        totals = StatsCollector.totals(wk for wk in workers if wk.get("ok"))
        totals["partitions"] = sum(len(wk.get("partitions") or []) for wk in workers)
        totals["unreachable"] = sum(1 for wk in workers if not wk.get("ok"))
        reached = [wk for wk in workers if wk.get("ok")]
        group = merge_series(reached, since)
        quality = merge_quality(wk.get("quality") or {} for wk in reached)
        experiment = self.experiment(merge_variants(wk.get("variants") or {} for wk in reached))
        for wk in workers:  # the table needs each worker's latest figures, not its history
            for key in ("series", "partition_lag", "variants"):
                wk.pop(key, None)
        return {"workers": workers, "totals": totals, "series": group, "quality": quality, "experiment": experiment}


async def fetch_peer(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                     since: float | None) -> dict[str, Any]:
    params = {"scope": "peer"} if since is None else {"scope": "peer", "since": repr(since)}
    try:
        async with session.get(f"{url}/api/stats", params=params, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)) as resp:
            if resp.status != 200:
                return {"url": url, "ok": False, "error": f"HTTP {resp.status}"}
            data = orjson.loads(await resp.read())
            return {**data, "url": url, "ok": True}
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, OSError) as exc:
        return {"url": url, "ok": False, "error": type(exc).__name__ + (f": {exc}" if str(exc) else "")}


def parse_since(raw: str | None) -> float | None:
    """The ``since`` parameter: a finite number of seconds since the epoch, or absent.

    >>> parse_since(None), parse_since("12.5")
    (None, 12.5)
    >>> parse_since("nan")
    Traceback (most recent call last):
    ValueError: since must be a finite number of seconds since the epoch, got 'nan'
    """
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"since must be a finite number of seconds since the epoch, got {raw!r}")
    return value


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def register_dashboard(w: Worker) -> Dashboard:
    """Declare the dashboard's pages, its sensor and its one-second sampling timer on the app."""
    app = w.app
    board = Dashboard(w)
    app.sensors.add(board.ingest_timer)
    guard, page_guard = authorized(w.settings.auth_token), authorized_page(w.settings.auth_token)
    static_headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    class DashboardView(View):
        @page_guard
        async def get(self, request: Any) -> Any:
            return self.bytes(_asset("dashboard.html"), content_type="text/html", headers=dict(PAGE_HEADERS))

    class DashboardScript(View):
        async def get(self, request: Any) -> Any:  # static code, no data: served without the token
            return self.bytes(_asset("dashboard.js"), content_type=ASSETS["dashboard.js"], headers=static_headers)

    class DashboardStyle(View):
        async def get(self, request: Any) -> Any:
            return self.bytes(_asset("dashboard.css"), content_type=ASSETS["dashboard.css"], headers=static_headers)

    class StatsView(View):
        @guard
        async def get(self, request: Any) -> Any:
            scope = request.query.get("scope", "local")
            try:
                since = parse_since(request.query.get("since"))
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            if scope == "summary":
                body = board.summary()
            elif scope == "peer":
                body = board.peer(since)
            elif scope == "local":
                body = board.local_stats()
            elif scope == "cluster":
                body = board.local_stats()
                body["cluster"] = await board.cluster_stats(request.headers.get("Authorization"), since)
            else:
                return self.json({"error": f"unknown scope {scope!r}: use local, summary, peer or cluster"},
                                 status=400)
            return self.bytes(_json(body), content_type="application/json", headers={"Cache-Control": "no-store"})

    async def sample_dashboard_stats() -> None:
        await board.sample()

    app.page("/dashboard")(DashboardView)
    app.page("/dashboard/dashboard.js")(DashboardScript)
    app.page("/dashboard/dashboard.css")(DashboardStyle)
    app.page("/api/stats")(StatsView)
    app.timer(interval=1.0, name="sample_dashboard_stats")(sample_dashboard_stats)
    return board
